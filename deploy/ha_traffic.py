"""Client traffic of the HA topology run: loops in threads, every request's outcome kept with the
step of the run it started in, and two topic subscribers that log everything they are told.

An outcome is the HTTP status, or `timeout` (the bounded client timeout passed: a hang), or
`connection error`. A request *failed* when its status is not the one its kind answers when
all is well; a failure is *clean* only as a 503 with a JSON body saying why.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

TIMEOUT = "timeout"
CONNECTION_ERROR = "connection error"


@dataclass
class Outcome:
    kind: str
    step: str
    status: int | str
    body: bytes
    at: float


def json_message(body: bytes) -> bool:
    """Whether `body` is a JSON object saying something (a `message`, `detail` or `error`)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and any(parsed.get(key) for key in ("message", "detail", "error", "result"))


@dataclass
class Traffic:
    ok: dict[str, set[int]]  # kind -> the statuses it answers when all is well
    step: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, step: str, status: int | str, body: bytes = b"") -> None:
        with self.lock:
            self.outcomes.append(Outcome(kind, step, status, body[:300], time.time()))

    def call(self, kind: str, send: Callable[[], httpx.Response]) -> httpx.Response | None:
        """Make one request, keeping its outcome; the response, or None when there was none."""
        step = self.step
        try:
            response = send()
        except httpx.TimeoutException:
            self.record(kind, step, TIMEOUT)
            return None
        except httpx.TransportError:
            self.record(kind, step, CONNECTION_ERROR)
            return None
        self.record(kind, step, response.status_code, response.content)
        return response

    def loop(self, name: str, body: Callable[[], None], pause: float = 0.02) -> threading.Event:
        """Run `body` again and again in a thread until `stop()`, or until the returned event is set."""
        halt = threading.Event()

        def run() -> None:
            while not self.stop_event.is_set() and not halt.is_set():
                body()
                self.stop_event.wait(pause)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)
        return halt

    def stop(self, limit: float = 30) -> list[str]:
        """Stop every loop; the names of those still running after `limit` seconds."""
        self.stop_event.set()
        deadline = time.monotonic() + limit
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
        return [thread.name for thread in self.threads if thread.is_alive()]

    # --- tallies ---

    def of(self, step: str | None = None) -> list[Outcome]:
        with self.lock:
            return [outcome for outcome in self.outcomes if step is None or outcome.step == step]

    def failed(self, step: str | None = None) -> list[Outcome]:
        return [outcome for outcome in self.of(step) if outcome.status not in self.ok.get(outcome.kind, {200})]

    def unclean(self, step: str | None = None) -> list[Outcome]:
        """The failures that are not a 503 with a JSON body: 500s, hangs, connection errors, anything else."""
        return [outcome for outcome in self.failed(step) if not (outcome.status == 503 and json_message(outcome.body))]


def describe(outcomes: list[Outcome]) -> str:
    """`cache PUT 503 x 12, topic publish 503 x 3` (by kind and status)."""
    counts = Counter((outcome.kind, str(outcome.status)) for outcome in outcomes)
    return ", ".join(f"{kind} {status} x {count}" for (kind, status), count in sorted(counts.items())) or "none"


class Subscriber:
    """A subscriber of one topic, resuming where it was after each answer or dropped stream; `log`
    holds, in order, ("item", text) for every message and ("gap", discontinuity) for every
    discontinuity it was told of."""

    def __init__(self, name: str, traffic: Traffic, client: httpx.Client, path: str, headers: dict) -> None:
        self.name = name
        self.traffic = traffic
        self.client = client
        self.path = path
        self.headers = headers
        self.log: list[tuple[str, object]] = []
        self.connected = threading.Event()
        self.cursor = {"sequence_number": "0", "sequence_page": "0"}  # long poll: from now, then resumed
        self.last_event_id: str | None = None  # SSE: resumed with Last-Event-ID
        self.ends = 0  # SSE streams the server ended

    def texts(self) -> set[str]:
        return {str(value) for kind, value in self.log if kind == "item"}

    def long_poll(self) -> None:
        self.connected.set()
        response = self.traffic.call(
            f"topic long poll ({self.name})",
            lambda: self.client.get(self.path, params=self.cursor, headers=self.headers),
        )
        if response is None or response.status_code != 200:
            time.sleep(0.2)
            return
        for entry in response.json()["items"]:
            if "item" in entry:
                item = entry["item"]
                self.log.append(("item", item["value"].get("text", "")))
                self.cursor = {
                    "sequence_number": str(item["topic_sequence_number"] + 1),
                    "sequence_page": str(item["sequence_page"]),
                }
            else:
                gap = entry["discontinuity"]
                self.log.append(("gap", gap))
                self.cursor = {
                    "sequence_number": str(gap["new_topic_sequence"]),
                    "sequence_page": str(gap["new_sequence_page"]),
                }

    def stream(self, read_timeout: float) -> None:
        """One SSE connection, read until the server ends it (or the run stops)."""
        headers = {**self.headers, "Accept": "text/event-stream"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        kind, step = f"topic SSE ({self.name})", self.traffic.step
        try:
            timeout = httpx.Timeout(read_timeout, connect=5)
            with self.client.stream("GET", self.path, headers=headers, timeout=timeout) as response:
                if response.status_code != 200:
                    response.read()
                    self.traffic.record(kind, step, response.status_code, response.content)
                    time.sleep(0.2)
                    return
                self.traffic.record(kind, step, 200)
                event = ""
                for line in response.iter_lines():
                    if self.traffic.stop_event.is_set():
                        return
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("id: "):
                        self.last_event_id = line[4:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                        if event == "discontinuity":
                            self.log.append(("gap", data))
                        elif event == "end":
                            self.ends += 1
                        elif not event:
                            self.log.append(("item", data["value"].get("text", "")))
                    elif line == "":
                        event = ""
        except httpx.TimeoutException:
            self.traffic.record(kind, self.traffic.step, TIMEOUT)
        except httpx.TransportError:
            self.traffic.record(kind, self.traffic.step, CONNECTION_ERROR)


def missed(log: list[tuple[str, object]], published: list[str]) -> tuple[list[str], list[str], int]:
    """Of `published` (in publish order, each acknowledged), those the subscriber never received:
    (announced: a discontinuity came between the received messages around it; lost silently),
    and how many it received more than once."""
    position: dict[str, int] = {}
    seen = Counter()
    for index, (kind, value) in enumerate(log):
        if kind == "item":
            seen[value] += 1
            position.setdefault(str(value), index)
    gaps = [index for index, (kind, _) in enumerate(log) if kind == "gap"]
    announced, silent = [], []
    for number, text in enumerate(published):
        if text in position:
            continue
        before = next((position[t] for t in reversed(published[:number]) if t in position), -1)
        after = next((position[t] for t in published[number + 1 :] if t in position), len(log))
        (announced if any(before < gap < after for gap in gaps) else silent).append(text)
    published_set = set(published)
    return announced, silent, sum(count - 1 for text, count in seen.items() if count > 1 and text in published_set)
