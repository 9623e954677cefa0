"""Scenario 6: Redis failovers under traffic: the Sentinel primary killed, then a cluster primary killed.

The service's three processes run as a service of the scenario's own, in a database of
its own on the suite's PostgreSQL, with every Redis it needs highly available:
REDIS_URL's Redis behind Sentinel (a primary, a replica and three Sentinels; the Celery
broker goes through them too) and the data faces (cache items, topic streams, their
rate limits) on a Redis Cluster of three primaries with a replica each.

Client loops run all along: cache PUT then GET of the same key, topic publishes, a
long-poll and an SSE subscriber following the topic (resuming by sequence number and
Last-Event-ID), a messaging API call that queues a task, and jobs created through the
jobs API, due at once, to the suite's `target` peer. Then:

(a) the Redis primary behind Sentinel is SIGKILLed; the Sentinels promote the replica;
(b) the cluster primary holding the topic's slot is SIGKILLed; its replica takes over.

Expected: while a failover lasts, 503s with a JSON message only, never a 500, a hang or
a refused connection; once the new primary serves, every face serves again from the
same processes (none restarted); no message answered 204 is missed by a subscriber
without a discontinuity telling it; every job created is delivered and succeeds.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from harness.redis_cluster import redis_cluster
from harness.redis_servers import SentinelGroup
from harness.waiting import wait_until

from .conftest import SETTINGS
from .helpers import json_error
from .services import Service, service_environment
from .test_redis_down import TOPIC, Subscribers
from .traffic import CHANGING, Traffic, describe

COMMAND = ".venv/bin/pytest faults/test_redis_failover.py"
DATABASE = "faults_failover"
MASTER = "faults-primary"
CLUSTER_NODE_TIMEOUT_MS = 1000
LONG_POLL_TIMEOUT = 15  # TOPICS_LONG_POLL_SECONDS (5) + 10
SETTLE_SECONDS = 6  # traffic after each recovery: more than a long poll's wait and an SSE heartbeat
BEFORE, A_DOWN, A_AFTER, B_DOWN, B_AFTER = "before", "(a) failing over", "(a) after", "(b) failing over", "(b) after"
PHASES = (BEFORE, A_DOWN, A_AFTER, B_DOWN, B_AFTER, CHANGING)
CALM = (BEFORE, A_AFTER, B_AFTER)  # no 503 allowed in these
SUCCESS = {
    "cache PUT": {204},
    "cache GET": {200},
    "topic publish": {204},
    "topic long poll": {200},
    "topic SSE connect": {200},
    "messaging API: schedule send (queues a task)": {202},
    "jobs API: create a job due at once": {200},
}
KEYS = """
from django.conf import settings
from cache_api.keys import item_prefix, topic_key
from cache_api.models import Cache

cache = Cache.objects.get(name="faults")
print(settings.CELERY_BROKER_URL.partition(":")[0])
print(item_prefix(cache.pk).decode())
print(topic_key(cache.pk, {topic!r}).decode())
"""


@pytest.fixture(autouse=True)
def _fresh_peers_and_running_service(target):
    """In place of the suite's: this scenario runs a service of its own, not the suite's."""
    target.reset()
    yield
    target.reset()


class FailoverWorld:
    """What the scenario starts: the Sentinel group, the cluster, and the service on them."""

    def __init__(self, group: SentinelGroup, cluster, service: Service):
        self.group, self.cluster, self.service = group, cluster, service
        broker, prefix, topic = service.django(KEYS.format(topic=TOPIC.rsplit("/", 1)[1])).split()[-3:]
        self.broker_scheme, self.item_prefix, self.topic_key = broker, prefix.encode(), topic.encode()

    def item_key_on(self, primary: int) -> str:
        """A cache key whose item lives on the cluster primary on port `primary`."""
        for number in range(10_000):
            key = f"probe-{number}"
            if self.cluster.owner(self.item_prefix + key.encode()) == primary:
                return key
        raise LookupError(f"No probe key found for the primary on {primary}")


@pytest.fixture
def world(postgres, sender, log_dir):
    home = log_dir / "failover"
    home.mkdir()
    media = tempfile.mkdtemp(prefix="faults-media-")
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, media, True)
        (home / "sentinel").mkdir()
        group = SentinelGroup(
            home / "sentinel",
            master_name=MASTER,
            password=secrets.token_hex(12),
            sentinel_password=secrets.token_hex(12),
        )
        stack.callback(group.stop)
        group.start()
        cluster = stack.enter_context(
            redis_cluster(home / "cluster", replicas=1, node_timeout_ms=CLUSTER_NODE_TIMEOUT_MS)
        )
        postgres.create_database(DATABASE)
        env = service_environment(
            postgres=postgres,
            redis=group,  # REDIS_URL: its password and database; the Sentinels name the primary
            MESSAGE_SENDER_URL=sender.url,
            MESSAGE_SENDER_TOKEN=secrets.token_hex(16),
            MEDIA_ROOT=media,
            REDIS_SENTINELS=group.sentinel_addresses,
            REDIS_SENTINEL_MASTER=MASTER,
            REDIS_SENTINEL_PASSWORD=group.sentinel_password,
            DATA_REDIS_CLUSTER_NODES=",".join(cluster.nodes),
            **SETTINGS,
        )
        env["DATABASE_URL"] = postgres.url(DATABASE)
        service = Service(env, home)
        stack.callback(service.stop)
        service.prepare()
        service.start()
        yield FailoverWorld(group, cluster, service)


class Subscribed(Subscribers):
    """The Redis-down scenario's subscribers, noting when each discontinuity reached them."""

    def __init__(self, service, traffic: Traffic):
        super().__init__(service, traffic)
        self.discontinuities: dict[str, list[float]] = {"long poll": [], "SSE": []}

    def note(self, subscriber: str, what: str, count: int = 1) -> None:
        super().note(subscriber, what, count)
        if what == "discontinuity":
            with self.lock:
                self.discontinuities[subscriber].append(time.monotonic())


def job_states(postgres, job_ids: list[str]) -> dict[str, str]:
    with postgres.connect(DATABASE) as connection:
        rows = connection.execute(
            "SELECT id::text, state FROM jobs_job WHERE id = ANY(%s::uuid[])", [job_ids]
        ).fetchall()
    return dict(rows)


def job_waits(postgres, job_ids: list[str]) -> dict[str, float]:
    """Job id -> seconds from its creation to its success (finished), for those finished."""
    with postgres.connect(DATABASE) as connection:
        rows = connection.execute(
            "SELECT id::text, EXTRACT(EPOCH FROM finished_at - created_at) FROM jobs_job "
            "WHERE id = ANY(%s::uuid[]) AND finished_at IS NOT NULL",
            [job_ids],
        ).fetchall()
    return {job_id: float(seconds) for job_id, seconds in rows}


def first_job_done_after(postgres, job_ids: list[str], since: float) -> float | None:
    """Seconds from `since` (a wall-clock time) until the first job created after it succeeded."""
    with postgres.connect(DATABASE) as connection:
        (done,) = connection.execute(
            "SELECT min(EXTRACT(EPOCH FROM finished_at)) FROM jobs_job "
            "WHERE id = ANY(%s::uuid[]) AND EXTRACT(EPOCH FROM created_at) >= %s",
            [job_ids, since],
        ).fetchone()
    return None if done is None else float(done) - since


def watch(wait, since: float) -> Future:
    """`wait()` run in a thread: its future gives the seconds from `since` until it returned."""
    pool = ThreadPoolExecutor(1)

    def timed() -> float:
        wait()
        return time.monotonic() - since

    future = pool.submit(timed)
    pool.shutdown(wait=False)
    return future


def test_redis_failovers_under_traffic(world, postgres, target, report):
    scenario = report.scenario("6. Redis failovers: the Sentinel primary and a cluster primary killed", COMMAND)
    service, group, cluster = world.service, world.group, world.cluster
    assert world.broker_scheme == "sentinel"  # the broker is derived from the Sentinels
    target.behave("/failover", status=200)
    traffic = Traffic()
    subscribers = Subscribed(service, traffic)
    with service.client() as setup:
        schedule = setup.post("/api/v1/schedule/", json={"minute": "0", "hour": "8", "day_of_month": "1"})
        assert schedule.status_code == 201, schedule.text
        schedule_id = schedule.json()["id"]

    clients = [service.client(timeout=LONG_POLL_TIMEOUT) for _ in range(6)]
    cache, publisher, poller, streamer, api, jobs = clients
    counter = iter(range(10**9))

    def cache_round() -> None:
        key = f"k{next(counter)}"
        put = traffic.call(
            "cache PUT",
            lambda: cache.put("/cache/faults", params={"key": key, "ttl_seconds": 60}, content=key.encode()),
        )
        if put is not None and put.status_code == 204:
            traffic.call("cache GET", lambda: cache.get("/cache/faults", params={"key": key}))

    published: dict[str, float] = {}  # message answered 204 -> when its publish started
    published_in: dict[str, list[str]] = {}  # phase -> those messages
    publishing = threading.Event()
    publish_under_way = threading.Lock()  # held for the whole of a publish, its answer noted included

    def publish() -> None:
        with publish_under_way:
            if not publishing.is_set():
                return
            message, started, phase = f"m{next(counter)}", time.monotonic(), traffic.phase
            response = traffic.call(
                "topic publish", lambda: publisher.post(TOPIC, content=message, headers={"Content-Type": "text/plain"})
            )
            if response is not None and response.status_code == 204:
                published[message] = started
                published_in.setdefault(traffic.phase_since(phase), []).append(message)

    def queue_a_task() -> None:
        traffic.call(
            "messaging API: schedule send (queues a task)", lambda: api.post(f"/api/v1/schedule/{schedule_id}/send/")
        )

    created: list[str] = []  # jobs whose creation was answered 200
    created_in: dict[str, list[str]] = {}  # phase -> those jobs
    creating = threading.Event()
    create_under_way = threading.Lock()

    def create_a_job() -> None:
        with create_under_way:
            if not creating.is_set():
                return
            at, phase = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), traffic.phase
            job = {"uri": f"{target.url}/failover", "method": "POST", "at": at, "timeout": 3}
            response = traffic.call(
                "jobs API: create a job due at once", lambda: jobs.post("/jobs.json", json={"job": job})
            )
            if response is not None and response.status_code == 200:
                created.append(response.json()["success"]["job"]["id"])
                created_in.setdefault(traffic.phase_since(phase), []).append(created[-1])

    def serving(probe_key: str) -> bool:
        """Whether every face serves now: cache PUT and GET of `probe_key`, a publish, a task queued."""
        with service.client() as client:
            put = client.put("/cache/faults", params={"key": probe_key, "ttl_seconds": 60}, content=b"x")
            got = client.get("/cache/faults", params={"key": probe_key})
            sent = client.post(TOPIC, content="probe", headers={"Content-Type": "text/plain"})
            queued = client.post(f"/api/v1/schedule/{schedule_id}/send/")
        statuses = (put.status_code, got.status_code, sent.status_code, queued.status_code)
        return statuses == (204, 200, 204, 202)

    timings: dict[str, float] = {}
    try:
        # The subscribers first, positioned on the topic by a first message, then the rest.
        traffic.loop("long poll", lambda: subscribers.long_poll(poller), pause=0)
        traffic.loop("sse", lambda: subscribers.stream(streamer), pause=0)

        def positioned() -> bool:
            """Whether both subscribers hold a position on the topic (a first message reached them); if not,
            one more first message (a subscriber that is not connected yet starts after the last one)."""
            if all(any(text.startswith("first") for text in texts) for texts in subscribers.texts.values()):
                return True
            with service.client() as client:
                sent = client.post(TOPIC, content=f"first{next(counter)}", headers={"Content-Type": "text/plain"})
            assert sent.status_code == 204, sent.text
            return False

        wait_until(positioned, what="both subscribers to receive a first message", timeout=60, every=1)
        publishing.set()
        creating.set()
        traffic.loop("cache", cache_round)
        traffic.loop("publish", publish, pause=0.05)
        traffic.loop("api", queue_a_task, pause=0.5)
        traffic.loop("jobs", create_a_job, pause=0.5)
        time.sleep(3)

        # (a) The Redis primary behind Sentinel.
        traffic.phase = A_DOWN
        killed, timings["a at"] = time.monotonic(), time.time()
        old = group.kill_primary()
        promotion = watch(lambda: group.wait_for_new_primary(old), killed)
        wait_until(lambda: serving("probe"), what="every face to serve after (a)", timeout=60, every=0.2)
        timings["a serving"] = time.monotonic() - killed
        timings["a promoted"] = promotion.result(90)
        traffic.phase = A_AFTER
        time.sleep(SETTLE_SECONDS)

        # (b) The cluster primary holding the topic's slot.
        victim = cluster.owner(world.topic_key)
        probe_key = world.item_key_on(victim)
        traffic.phase = B_DOWN
        killed, timings["b at"] = time.monotonic(), time.time()
        cluster.kill(victim)
        promotion = watch(lambda: cluster.wait_for_promotion(world.topic_key, victim), killed)
        wait_until(lambda: serving(probe_key), what="every face to serve after (b)", timeout=60, every=0.2)
        timings["b serving"] = time.monotonic() - killed
        timings["b promoted"] = promotion.result(90)
        traffic.phase = B_AFTER
        time.sleep(SETTLE_SECONDS)

        # Stop publishing and creating, counting an answer under way; then let the rest arrive.
        publishing.clear()
        creating.clear()
        with publish_under_way, create_under_way:
            pass

        def missing() -> dict[str, set[str]]:
            return {name: set(published) - texts for name, texts in subscribers.texts.items()}

        with contextlib.suppress(TimeoutError):  # the assertions below say what is missing
            wait_until(lambda: not any(missing().values()), what="the subscribers to catch up", timeout=20, every=0.2)
        with contextlib.suppress(TimeoutError):
            wait_until(
                lambda: set(job_states(postgres, created).values()) <= {"succeeded"},
                what="every job created to succeed",
                timeout=60,
                every=0.5,
            )
    finally:
        traffic.stop()
        for client in clients:
            client.close()

    states = Counter(job_states(postgres, created).values())
    delivered = target.keys("/failover")
    bodies_503 = [outcome.body for outcome in traffic.of() if outcome.status == 503]
    not_json = [body for body in bodies_503 if not json_error(body, "message", "detail", "error")]
    unexpected = {
        (outcome.kind, outcome.phase, outcome.status)
        for outcome in traffic.of()
        if outcome.kind in SUCCESS
        and outcome.status not in SUCCESS[outcome.kind]
        and (outcome.phase in CALM or outcome.status != 503)
    }
    lost = missing()
    silent = {
        name: {
            message
            for message in lost[name]
            if not any(at >= published[message] for at in subscribers.discontinuities[name])
        }
        for name in lost
    }

    scenario.add("Redis behind Sentinel", "primary + replica, 3 Sentinels (down after 1 s); the broker through them")
    scenario.add(
        "data faces", f"Redis Cluster, 3 primaries with a replica each (node timeout {CLUSTER_NODE_TIMEOUT_MS} ms)"
    )
    killed_what = {"a": "the Sentinel primary", "b": "the cluster primary holding the topic"}
    for fault, what in killed_what.items():
        if f"{fault} at" not in timings:
            continue
        done = first_job_done_after(postgres, created, timings[f"{fault} at"])
        scenario.add(f"({fault}) {what} SIGKILLed: replica promoted after", f"{timings[f'{fault} promoted']:.1f} s")
        scenario.add(f"({fault}) every face served again after", f"{timings[f'{fault} serving']:.1f} s")
        scenario.add(
            f"({fault}) the first job created after the kill succeeded after",
            "none created" if done is None else f"{done:.1f} s",
        )
    traffic.report(scenario, PHASES)
    scenario.add("503s", f"{len(bodies_503)} ({len(not_json)} without a JSON message)")
    scenario.add("answers other than success outside a failover, or other than 503 during one", len(unexpected))
    for subscriber in ("long poll", "SSE"):
        for what, named in (("discontinuity", "discontinuities"), ("end", "`end` events"))[: 1 + (subscriber == "SSE")]:
            by_phase = {phase: subscribers.count(subscriber, what, phase) for phase in PHASES}
            shown = ", ".join(f"{phase} {count}" for phase, count in by_phase.items() if count) or "none"
            scenario.add(f"{subscriber} subscriber: {named} received", shown)
    scenario.add(
        "messages published (204), by phase",
        ", ".join(f"{phase} {len(published_in.get(phase, []))}" for phase in PHASES if published_in.get(phase)),
    )
    for name in lost:
        scenario.add(
            f"{name} subscriber: published and never received, unannounced / announced by a discontinuity",
            f"{len(silent[name])} / {len(lost[name]) - len(silent[name])}",
        )
    scenario.add(
        "jobs created (200) / distinct jobs delivered to the target",
        f"{len(created)} / {len(delivered)} ({sum(delivered.values())} requests)",
    )
    scenario.add("jobs created, by state", describe(states))
    waits = job_waits(postgres, created)
    scenario.add(
        "jobs: longest time from creation to success, by phase created in",
        ", ".join(
            f"{phase} {max(waits.get(job, 0) for job in created_in[phase]):.1f} s"
            for phase in PHASES
            if created_in.get(phase)
        ),
    )
    scenario.add("processes restarted", "none" if service.all_alive else "some died")

    assert not traffic.unclean()
    assert not not_json
    assert not unexpected, sorted(unexpected, key=str)
    assert published_in.get(A_AFTER) and published_in.get(B_AFTER)
    assert not silent["long poll"], sorted(silent["long poll"])
    assert not silent["SSE"], sorted(silent["SSE"])
    assert created
    assert set(states) == {"succeeded"} and sum(states.values()) == len(created), states
    assert service.all_alive
    scenario.outcome = "passed: 503s with a message while failing over only, served again without a restart"
