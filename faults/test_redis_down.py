"""Scenario 2: Redis stops for a few seconds under cache and topics traffic, then comes back empty.

Client loops run all along: cache PUT then GET of the same key, topic publishes,
a long-poll subscriber and an SSE subscriber following the topic, and a messaging
API call that queues a task (`POST /api/v1/schedule/{id}/send/`). Redis is
stopped (it keeps nothing: a crash), left down, then started again on the same
port. While it is down a job is scheduled, due at once.

Expected: while Redis is down, cache and topic requests get a 503 with a JSON
message, never a 500 and never a hang (every client wait is bounded); after it
is back, the same processes serve again without a restart; subscribers either
resume or are told of a discontinuity (the topic restarted empty); the job
scheduled during the outage runs once Redis is back.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter

import httpx

from harness.waiting import wait_until

from .helpers import create_jobs, jobs_of, json_error
from .traffic import CHANGING, CONNECTION_ERROR, TIMEOUT, Traffic

COMMAND = ".venv/bin/pytest faults/test_redis_down.py"
TOPIC = "/topics/faults/events"
DOWN_SECONDS = 5
LONG_POLL_TIMEOUT = 15  # TOPICS_LONG_POLL_SECONDS (5) + 10
SSE_READ_TIMEOUT = 10  # heartbeats come every TOPICS_SSE_HEARTBEAT_SECONDS (2)
PHASES = ("before", "stopping", "down", "starting", "recovering", "after", CHANGING)


class Subscribers:
    """A long-poll and an SSE subscriber of the topic; what each received, by phase."""

    def __init__(self, service, traffic: Traffic):
        self.service = service
        self.traffic = traffic
        self.received: Counter = Counter()  # (subscriber, phase, "item" | "discontinuity" | "end") -> count
        self.texts: dict[str, set[str]] = {"long poll": set(), "SSE": set()}  # the messages each received
        self.lock = threading.Lock()
        self.poll_cursor = {"sequence_number": 0, "sequence_page": 0}
        self.last_event_id: str | None = None

    def note(self, subscriber: str, what: str, count: int = 1) -> None:
        with self.lock:
            self.received[(subscriber, self.traffic.phase, what)] += count

    def count(self, subscriber: str, what: str, phase: str | None = None) -> int:
        with self.lock:
            return sum(
                n
                for (who, when, kind), n in self.received.items()
                if who == subscriber and kind == what and (phase is None or when == phase)
            )

    def long_poll(self, client: httpx.Client) -> None:
        response = self.traffic.call("topic long poll", lambda: client.get(TOPIC, params=self.poll_cursor))
        if response is None or response.status_code != 200:
            time.sleep(0.2)
            return
        for entry in response.json()["items"]:
            if "item" in entry:
                item = entry["item"]
                self.note("long poll", "item")
                self.texts["long poll"].add(item["value"].get("text", ""))
                self.poll_cursor = {
                    "sequence_number": item["topic_sequence_number"] + 1,
                    "sequence_page": item["sequence_page"],
                }
            else:
                gap = entry["discontinuity"]
                self.note("long poll", "discontinuity")
                self.poll_cursor = {
                    "sequence_number": gap["new_topic_sequence"],
                    "sequence_page": gap["new_sequence_page"],
                }

    def stream(self, client: httpx.Client) -> None:
        """One SSE connection, read until the server ends it (or the loop stops)."""
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        phase = self.traffic.phase
        try:
            with client.stream("GET", TOPIC, headers=headers, timeout=httpx.Timeout(SSE_READ_TIMEOUT, connect=5)) as r:
                self.traffic.record("topic SSE connect", phase, r.status_code)
                if r.status_code != 200:
                    r.read()
                    time.sleep(0.2)
                    return
                event = ""
                for line in r.iter_lines():
                    if self.traffic.stop_event.is_set():
                        return
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("id: "):
                        self.last_event_id = line[4:]
                    elif line.startswith("data: "):
                        self.note("SSE", event or "item")
                        if not event:
                            self.texts["SSE"].add(json.loads(line[6:])["value"].get("text", ""))
                        if event == "end":
                            self.traffic.record("topic SSE ended by the server", self.traffic.phase, "end")
                    elif line == "":
                        event = ""
        except httpx.TimeoutException:
            self.traffic.record("topic SSE read", self.traffic.phase, TIMEOUT)
        except httpx.TransportError:
            self.traffic.record("topic SSE read", self.traffic.phase, CONNECTION_ERROR)


def test_redis_stopped_under_cache_and_topics_traffic(service, postgres, redis, target, report):
    scenario = report.scenario("2. Redis stopped under cache and topics traffic", COMMAND)
    target.behave("/after-outage", status=200)
    traffic = Traffic()
    subscribers = Subscribers(service, traffic)
    with service.client() as setup:
        schedule = setup.post("/api/v1/schedule/", json={"minute": "0", "hour": "8", "day_of_month": "1"})
        assert schedule.status_code == 201, schedule.text
        schedule_id = schedule.json()["id"]

    clients = [service.client(timeout=LONG_POLL_TIMEOUT) for _ in range(5)]
    cache, publisher, poller, streamer, api = clients
    counter = iter(range(10**9))

    def cache_round() -> None:
        key = f"k{next(counter)}"
        put = traffic.call(
            "cache PUT",
            lambda: cache.put(
                "/cache/faults", params={"key": key, "ttl_seconds": 60}, content=b"value-" + key.encode()
            ),
        )
        if put is not None and put.status_code == 204:
            traffic.call("cache GET", lambda: cache.get("/cache/faults", params={"key": key}))

    published: dict[str, list[str]] = {}  # phase -> messages whose publish was answered 204

    publishing = threading.Event()
    publishing.set()
    publish_under_way = threading.Lock()  # held for the whole of a publish, its answer noted included

    def publish() -> None:
        with publish_under_way:
            if not publishing.is_set():
                return
            message, phase = f"m{next(counter)}", traffic.phase
            response = traffic.call(
                "topic publish", lambda: publisher.post(TOPIC, content=message, headers={"Content-Type": "text/plain"})
            )
            if response is not None and response.status_code == 204:
                published.setdefault(phase, []).append(message)

    def queue_a_task() -> None:
        traffic.call(
            "messaging API: schedule send (queues a task)", lambda: api.post(f"/api/v1/schedule/{schedule_id}/send/")
        )

    try:
        traffic.loop("cache", cache_round)
        traffic.loop("publish", publish, pause=0.05)
        traffic.loop("long poll", lambda: subscribers.long_poll(poller), pause=0)
        traffic.loop("sse", lambda: subscribers.stream(streamer), pause=0)
        traffic.loop("api", queue_a_task, pause=0.5)
        time.sleep(3)

        traffic.phase = "stopping"
        redis.stop()
        traffic.phase = "down"
        with service.client() as client:
            job_ids = create_jobs(client, [f"{target.url}/after-outage"], timeout=3)
        time.sleep(DOWN_SECONDS)
        traffic.phase = "starting"
        redis.start()
        traffic.phase = "recovering"

        def serving() -> bool:
            key = "recovery-probe"
            with service.client() as client:
                put = client.put("/cache/faults", params={"key": key, "ttl_seconds": 60}, content=b"x")
                got = client.get("/cache/faults", params={"key": key})
                sent = client.post(TOPIC, content="probe", headers={"Content-Type": "text/plain"})
            return put.status_code == 204 and got.status_code == 200 and sent.status_code == 204

        wait_until(serving, what="the cache and topics to serve again", timeout=60, every=0.5)
        traffic.phase = "after"
        time.sleep(6)  # more than a long poll's wait and an SSE heartbeat
        job_ran = wait_until(
            lambda: jobs_of(postgres, job_ids)[job_ids[0]][0] == "succeeded",
            what="the job scheduled during the outage to run",
            timeout=90,
            every=0.5,
        )
        publishing.clear()  # then let the subscribers read what was published last:
        with publish_under_way:  # counting a publish answered after the clear
            pass

        def drained() -> bool:
            last = set(published.get("after", []))
            return all(last <= texts for texts in subscribers.texts.values())

        with contextlib.suppress(TimeoutError):  # the assertions below say what is missing
            wait_until(drained, what="the subscribers to read the last messages", timeout=20, every=0.2)
    finally:
        traffic.stop()
        for client in clients:
            client.close()

    lean = ("cache PUT", "cache GET", "topic publish")
    down_lean = Counter()
    for kind in lean:
        down_lean += traffic.statuses(kind=kind, phase="down")
    after = Counter()
    for kind in lean:
        after += traffic.statuses(kind=kind, phase="after")
    bodies_503 = [outcome.body for outcome in traffic.of() if outcome.status == 503]
    not_json = [body for body in bodies_503 if not json_error(body, "message", "detail")]

    scenario.add("Redis down for", f"{DOWN_SECONDS} s (stopped, started again empty)")
    traffic.report(scenario, PHASES)
    scenario.add("cache and publish 503s after the recovery", after[503])
    scenario.add("503s without a JSON message", len(not_json))
    for subscriber in ("long poll", "SSE"):
        for what in ("item", "discontinuity", "end"):
            by_phase = {phase: subscribers.count(subscriber, what, phase) for phase in PHASES}
            if any(by_phase.values()):
                shown = ", ".join(f"{phase} {count}" for phase, count in by_phase.items() if count)
                scenario.add(f"{subscriber} subscriber: {what}s received", shown)
    published_after = set(published.get("after", []))
    published_before = set(published.get("before", []))
    lost_after = {name: published_after - texts for name, texts in subscribers.texts.items()}
    scenario.add(
        "messages published (204), before the stop / after the recovery",
        f"{len(published_before)} / {len(published_after)}",
    )
    for name, texts in subscribers.texts.items():
        scenario.add(
            f"{name} subscriber: published after the recovery and never received (lost)", len(lost_after[name])
        )
        scenario.add(
            f"{name} subscriber: published before the stop and never received (gone with Redis's data)",
            len(published_before - texts),
        )
    scenario.add("job scheduled during the outage", "succeeded" if job_ran else "not run")
    scenario.add("processes restarted", "none" if service.all_alive else "some died")

    assert not traffic.unclean()
    assert set(down_lean) <= {503}, down_lean
    assert down_lean[503] > 0
    assert not not_json
    # A connection pooled before the outage fails its next command, which is sent again on a new one: no 503.
    assert set(after) <= {200, 204}, after
    assert all(outcome.status == 204 for outcome in traffic.of(kind="cache PUT", phase="after")[-20:])
    assert all(outcome.status == 204 for outcome in traffic.of(kind="topic publish", phase="after")[-20:])
    assert set(traffic.statuses(kind="messaging API: schedule send (queues a task)", phase="down")) <= {503}
    assert published_after
    assert not lost_after["long poll"]
    assert not lost_after["SSE"]
    assert service.all_alive
    scenario.outcome = "passed: clean 503s while down, recovered without a restart"
