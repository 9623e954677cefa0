"""Client traffic during a fault: loops in threads, each request's outcome tallied by phase.

A phase is what the test says the world is in ("before", "down", "after", ...); a
request belongs to the phase it started and ended in, or to `changing` when the
phase changed while it was under way. An outcome is the HTTP status, or `timeout` when
the bounded client timeout passed (a hang), or `connection error`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

TIMEOUT = "timeout"
CONNECTION_ERROR = "connection error"
CHANGING = "changing"
# Answers no fault may cause: a server error, a hang, a refused connection.
UNCLEAN = (500, TIMEOUT, CONNECTION_ERROR)


@dataclass
class Answer:
    """What one request of the traffic got: its status (or TIMEOUT, CONNECTION_ERROR) and body."""

    kind: str
    phase: str
    status: int | str
    body: bytes = b""


@dataclass
class Traffic:
    phase: str = "before"
    outcomes: list[Answer] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, phase: str, status: int | str, body: bytes = b"") -> None:
        with self.lock:
            self.outcomes.append(Answer(kind, phase, status, body[:500]))

    def call(self, kind: str, send: Callable[[], httpx.Response]) -> httpx.Response | None:
        """Make one request, recording its outcome; the response, or None when there was none."""
        started = self.phase
        try:
            response = send()
        except httpx.TimeoutException:
            self.record(kind, self.phase_since(started), TIMEOUT)
            return None
        except httpx.TransportError:
            self.record(kind, self.phase_since(started), CONNECTION_ERROR)
            return None
        self.record(kind, self.phase_since(started), response.status_code, response.content)
        return response

    def phase_since(self, started: str) -> str:
        """The phase a request that started in `started` and ends now belongs to: `changing` when it spans two."""
        return started if self.phase == started else CHANGING

    def loop(self, name: str, body: Callable[[], None], pause: float = 0.02) -> None:
        """Run `body` again and again in a thread until `stop()`."""

        def run() -> None:
            while not self.stop_event.is_set():
                body()
                self.stop_event.wait(pause)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self, limit: float = 60) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(limit)
        stuck = [thread.name for thread in self.threads if thread.is_alive()]
        if stuck:
            raise AssertionError(f"Client loops still running {limit:g} s after being stopped: {stuck}")

    # --- tallies -------------------------------------------------------------

    def of(self, *, kind: str | None = None, phase: str | None = None) -> list[Answer]:
        with self.lock:
            return [
                outcome
                for outcome in self.outcomes
                if (kind is None or outcome.kind == kind) and (phase is None or outcome.phase == phase)
            ]

    def statuses(self, *, kind: str | None = None, phase: str | None = None) -> Counter:
        return Counter(outcome.status for outcome in self.of(kind=kind, phase=phase))

    def kinds(self) -> list[str]:
        with self.lock:
            return list(dict.fromkeys(outcome.kind for outcome in self.outcomes))

    def report(self, scenario, phases: tuple[str, ...]) -> None:
        """Add to `scenario` what every fault reports: requests made, statuses by kind and
        phase, and the 500s, hangs and connection errors among them."""
        everything = self.statuses()
        scenario.add("requests made", sum(everything.values()))
        for kind in self.kinds():
            for phase in phases:
                statuses = self.statuses(kind=kind, phase=phase)
                if statuses:
                    scenario.add(f"{kind}, {phase}", describe(statuses))
        scenario.add("500s", everything.get(500, 0))
        scenario.add("hangs (bounded client timeout passed)", everything.get(TIMEOUT, 0))
        scenario.add("connection errors", everything.get(CONNECTION_ERROR, 0))

    def unclean(self) -> dict[int | str, int]:
        """The outcomes no fault may cause (UNCLEAN) that happened, with their counts."""
        everything = self.statuses()
        return {outcome: everything[outcome] for outcome in UNCLEAN if everything[outcome]}


def describe(statuses: Counter) -> str:
    """`200 x 31, 503 x 4` (statuses in order, outcomes without one after)."""
    numbered = sorted((status, count) for status, count in statuses.items() if isinstance(status, int))
    other = sorted((status, count) for status, count in statuses.items() if not isinstance(status, int))
    return ", ".join(f"{status} x {count}" for status, count in numbered + other) or "none"
