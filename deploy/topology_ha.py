"""Run the topology with no single point of failure on loopback, break it three times under
traffic, and check that nothing was lost.

    .venv/bin/python deploy/topology_ha.py [--keep-logs]        (make topology-ha)

Starts nginx in front of 2 web processes, 2 Celery workers and 2 schedulers (one leads beat
by the lease, both dispatch jobs); Redis as a primary, a replica and 3 Sentinels
(REDIS_SENTINELS); a Redis Cluster of 3 primaries, each with a replica, for the cache items
and topic streams (DATA_REDIS_CLUSTER_NODES); RabbitMQ as the broker (a vhost of the run's
own); a PostgreSQL database of its own; a local message sender and job target. Under
continuous traffic on every face it SIGKILLs, one after another with recovery in between,
the leading scheduler, the Redis primary, and the Redis Cluster primary holding the topic.
It reports, for each, the time to recover and the requests that failed, and overall the
schedule periods sent exactly once, periodic ticks run twice, jobs lost and topic messages
lost silently. PASS/FAIL lines go to deploy/results/topology-ha-<date>-<time>.md; the exit
status is non-zero when one fails. Everything started is stopped at the end.
"""

import argparse
import contextlib
import itertools
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from checks import CheckFailed, Report, expect
from ha_stores import CLUSTER_NODE_TIMEOUT_MS, RabbitVhost, ReplicatedCluster
from ha_traffic import Subscriber, Traffic, describe, missed
from layout import POSTGRES, WEB_PROCESSES, WORKERS
from psycopg import sql
from topology import Topology, procfile

from harness import redis_servers
from harness.redis_servers import SentinelGroup
from harness.waiting import poll, wait_until

DATABASE = "topology_ha"
SCHEDULERS = 2
MASTER_NAME = "sbm"
TOPIC = "/topics/ha/events"
SUBSCRIPTIONS = 5
MESSAGES = 10  # a message set longer than the run has periods
ENTRY = "topology-ha: every second"
LONG_POLL_SECONDS = 5
SSE_HEARTBEAT_SECONDS = 2
REQUEST_TIMEOUT = 10  # a request still unanswered after this is a hang
# Short timeouts, as the fault suite's (faults/conftest.py), so that each fault plays out in seconds.
SETTINGS = {
    "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",  # the peers are on loopback
    "REDIS_SOCKET_TIMEOUT": "2",
    "SEND_TIMEOUT": "2",
    "SEND_RETRY_DELAYS": "0.5,1",
    "JOBS_RETRY_SCHEDULE": "2,4,6",
    "JOBS_MAX_TIMEOUT": "3",
    "JOBS_DEFAULT_TIMEOUT": "3",
    "JOBS_LEASE_SECONDS": "25",
    "TOPICS_LONG_POLL_SECONDS": str(LONG_POLL_SECONDS),
    "TOPICS_SSE_HEARTBEAT_SECONDS": str(SSE_HEARTBEAT_SECONDS),
    "CACHE_RATE_LIMIT_REQUESTS": "100000000",
}
OK = {  # what each kind of request answers when all is well
    "cache PUT": {204},
    "cache GET": {200, 404},  # 404: the item went with a primary before it was replicated (counted apart)
    "topic publish": {204},
    "topic long poll (long poll)": {200},
    "topic SSE (SSE)": {200},
    "job create": {200},
    "messaging API: list subscriptions": {200},
    "messaging API: create a message": {201},
    "health": {200},
}
KILL_SECONDS = (52, 57)  # the leading scheduler is killed between these seconds of a minute
STEPS = ("1. leading scheduler SIGKILLed", "2. Redis primary SIGKILLed", "3. Redis Cluster primary SIGKILLed")


class HATopology(Topology):
    """topology.py's processes, with two schedulers, on Sentinel, a replicated Redis Cluster and RabbitMQ."""

    def __init__(self, report: Report, tmp: Path, sentinels: SentinelGroup, cluster: ReplicatedCluster, vhost) -> None:
        super().__init__(report, tmp)
        self.sentinels, self.cluster, self.vhost = sentinels, cluster, vhost
        self.env.update(
            {
                "DATABASE_URL": f"{POSTGRES.replace('postgresql', 'postgres')}/{DATABASE}",
                "REDIS_URL": sentinels.url(0),  # only its password and database number count
                "REDIS_SENTINELS": sentinels.sentinel_addresses,
                "REDIS_SENTINEL_MASTER": MASTER_NAME,
                "REDIS_SENTINEL_PASSWORD": sentinels.sentinel_password,
                "DATA_REDIS_CLUSTER_NODES": ",".join(cluster.addresses),
                "CELERY_BROKER_URL": vhost.url,
                **SETTINGS,
            }
        )
        self.schedulers: list = []

    def prepare_storage(self) -> None:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        self.database_created = True

    def start_processes(self) -> None:
        # topology.py's web processes, workers, scheduler and nginx; then a second scheduler.
        super().start_processes()
        command = procfile()["scheduler"]
        self.processes.start(f"scheduler{SCHEDULERS}", ["bash", "-c", f"exec {command}"], env=self.env)
        self.schedulers = [p for p in self.processes.started if p.name.startswith("scheduler")]

    def stop(self) -> None:
        for process in self.processes.stop_all(grace=30):
            self.report.say(f"{process.name} did not stop within 30 s of SIGTERM: killed.")
        for peer in (self.sender, self.target):
            peer.stop()
        if self.database_created:
            with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))

    def query(self, text: str, *params) -> list[tuple]:
        with psycopg.connect(f"{POSTGRES}/{DATABASE}") as connection:
            return connection.execute(text, params).fetchall()

    def lease(self) -> tuple[str, int] | None:
        rows = self.query("SELECT holder, token FROM core_leaderlease WHERE name = 'beat' AND expires_at > now()")
        return rows[0] if rows else None

    def log_tails(self, lines: int = 25) -> list[str]:
        out = super().log_tails(lines)
        for path in sorted([*self.tmp.glob("sentinel/*.log"), *self.tmp.glob("cluster/*.log")]):
            tail = path.read_text(errors="replace").splitlines()[-10:]
            out += [f"--- {path.parent.name}/{path.name} (last {len(tail)} lines)", *tail]
        return out


class Run:
    """The traffic, the three faults and what is checked after them."""

    def __init__(self, topology: HATopology, report: Report) -> None:
        self.topology = topology
        self.report = report
        self.traffic = Traffic(ok=OK)
        self.clients: list[httpx.Client] = []
        self.recovery: dict[str, str] = {}
        self.published: list[str] = []
        self.jobs: dict[str, int] = {}  # job id -> its number
        self.counter = iter(range(10**9))

    def client(self, timeout: float = REQUEST_TIMEOUT) -> httpx.Client:
        client = self.topology.client(timeout=timeout)
        self.clients.append(client)
        return client

    # --- set-up ---

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = self.setup.request(method, f"/api/v1/{path}", headers=self.auth, **kwargs)
        expect(response.status_code in (200, 201, 202), f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def prepare(self) -> None:
        token = self.topology.manage("createtoken", "ops@example.org", "--superuser").strip().splitlines()[-1]
        self.auth = {"Authorization": f"Token {token}"}
        self.setup = self.client()
        expect(self.setup.put("/api/v1/caches/ha", headers=self.auth).status_code == 201, "the cache was not created")
        schedule = self.api("POST", "schedule/", json={"minute": "*", "hour": "*"})
        messageset = self.api(
            "POST",
            "messageset/",
            json={"short_name": "ha", "label": "HA run", "default_schedule": schedule["id"], "channel": "sms"},
        )
        for number in range(1, MESSAGES + 1):
            self.api(
                "POST",
                "message/",
                json={
                    "messageset": messageset["id"],
                    "sequence_number": number,
                    "lang": "eng",
                    "text_content": f"M{number}",
                },
            )
        self.subscriptions = [
            self.api(
                "POST",
                "subscriptions/",
                json={
                    "identity": str(uuid.uuid4()),
                    "messageset": messageset["id"],
                    "lang": "eng",
                    "schedule": schedule["id"],
                },
            )["id"]
            for _ in range(SUBSCRIPTIONS)
        ]
        yearly = self.api("POST", "schedule/", json={"minute": "0", "hour": "8", "day_of_month": "1"})
        self.scratch = self.api(
            "POST",
            "messageset/",
            json={
                "short_name": "ha-scratch",
                "label": "API writes",
                "default_schedule": yearly["id"],
                "channel": "sms",
            },
        )["id"]
        self.topology.manage(
            "shell",
            "-c",
            "from django_celery_beat.models import IntervalSchedule, PeriodicTask\n"
            "every, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)\n"
            f"PeriodicTask.objects.update_or_create(name={ENTRY!r}, defaults=dict(interval=every, "
            "task='subscriptions.requeue_failed_tasks', enabled=True))\n",
        )
        for process in self.topology.schedulers:
            wait_until(lambda p=process: "Beat started" in p.output(), what=f"{process.name} to start", timeout=60)
        _, token = wait_until(self.topology.lease, what="a scheduler to lead", timeout=30, every=0.2)
        wait_until(lambda: self.ticks_by(token), what="ticks of the periodic task", timeout=30, every=0.2)

    def ticks(self) -> list[tuple[str, float, int]]:
        rows = self.topology.query("SELECT entry, extract(epoch FROM tick), token FROM core_beattick")
        return [(entry, float(tick), token) for entry, tick, token in rows]

    def ticks_by(self, token: int) -> int:
        return sum(1 for entry, _, t in self.ticks() if entry == ENTRY and t == token)

    # --- traffic ---

    def start_traffic(self) -> None:
        traffic, auth = self.traffic, self.auth
        cache, publisher, jobs, api, health = (self.client() for _ in range(5))

        def cache_round() -> None:
            key = f"k{next(self.counter)}"
            put = traffic.call(
                "cache PUT",
                lambda: cache.put(
                    "/cache/ha", params={"key": key, "ttl_seconds": 600}, content=key.encode(), headers=auth
                ),
            )
            if put is not None and put.status_code == 204:
                traffic.call("cache GET", lambda: cache.get("/cache/ha", params={"key": key}, headers=auth))

        def publish() -> None:
            text = f"m{next(self.counter)}"
            headers = {**auth, "Content-Type": "text/plain"}
            response = traffic.call("topic publish", lambda: publisher.post(TOPIC, content=text, headers=headers))
            if response is not None and response.status_code == 204:
                self.published.append(text)

        def create_job() -> None:
            number = next(self.counter)
            at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            job = {"uri": f"{self.topology.target.url}/job/{number}", "method": "POST", "at": at}
            response = traffic.call("job create", lambda: jobs.post("/jobs.json", json={"job": job}, headers=auth))
            if response is not None and response.status_code == 200:
                self.jobs[response.json()["success"]["job"]["id"]] = number

        def messaging() -> None:
            traffic.call(
                "messaging API: list subscriptions",
                lambda: api.get("/api/v1/subscriptions/", params={"page_size": 5}, headers=auth),
            )
            number = next(self.counter)
            message = {"messageset": self.scratch, "sequence_number": number, "lang": "eng", "text_content": "x"}
            traffic.call(
                "messaging API: create a message", lambda: api.post("/api/v1/message/", json=message, headers=auth)
            )

        self.poller = Subscriber("long poll", traffic, self.client(LONG_POLL_SECONDS + 10), TOPIC, auth)
        self.streamer = Subscriber("SSE", traffic, self.client(), TOPIC, auth)
        traffic.loop("long poll", self.poller.long_poll, pause=0)
        traffic.loop("sse", lambda: self.streamer.stream(SSE_HEARTBEAT_SECONDS + 8), pause=0)
        wait_until(
            lambda: self.poller.connected.is_set() and self.streamer.connected.is_set(),
            what="the subscribers to connect",
            timeout=20,
        )
        time.sleep(1)  # the long poll is waiting
        traffic.loop("cache", cache_round)
        self.publishing = traffic.loop("publish", publish, pause=0.05)
        self.creating_jobs = traffic.loop("jobs", create_job, pause=0.1)
        traffic.loop("messaging API", messaging, pause=0.2)
        traffic.loop("health", lambda: traffic.call("health", lambda: health.get("/api/health/")), pause=0.2)

    # --- the faults ---

    def kill_leading_scheduler(self) -> str:
        # Killed a few seconds before a minute, so that the lease lapses after it: the schedule's run
        # at that minute falls to the other scheduler, late, and must still be sent once.
        if not KILL_SECONDS[0] <= datetime.now(UTC).second < KILL_SECONDS[1]:
            time.sleep((KILL_SECONDS[0] - datetime.now(UTC).second) % 60)
        holder, token = self.topology.lease()
        pid = int(holder.split(":")[1])
        leader = next(p for p in self.topology.schedulers if p.pid == pid)
        leader.kill()
        killed, killed_at = time.monotonic(), datetime.now(UTC)
        holder, new_token = wait_until(
            lambda: (current := self.topology.lease()) and current[1] > token and current,
            what="the other scheduler to take the lease",
            timeout=40,
            every=0.1,
        )
        took = time.monotonic() - killed
        wait_until(lambda: self.ticks_by(new_token), what="ticks under the new lease", timeout=20, every=0.2)
        ticked = time.monotonic() - killed
        leader.start()  # back as a standby
        wait_until(lambda: "Beat started" in leader.output(), what=f"{leader.name} to start again", timeout=60)
        expect(int(holder.split(":")[1]) != pid, f"the lease went back to the killed process: {holder}")
        self.recovery[STEPS[0]] = f"{took:.1f} s"
        return (
            f"{leader.name} (pid {pid}, lease token {token}) killed at {killed_at:%H:%M:%S}; "
            f"lease taken (token {new_token}) after {took:.1f} s, first tick under it after {ticked:.1f} s; "
            f"{leader.name} started again as the standby"
        )

    def kill_redis_primary(self) -> str:
        sentinels = self.topology.sentinels
        old = sentinels.kill_primary()
        killed = time.monotonic()
        new = sentinels.wait_for_new_primary(old, timeout=60)
        promoted = time.monotonic() - killed
        with self.topology.client(timeout=5) as probe:
            wait_until(
                lambda: _status(lambda: probe.get("/api/health/")) == 200,
                what="the health check to answer 200",
                timeout=60,
                every=0.1,
            )
        served = time.monotonic() - killed
        sentinels._start_node(old)  # back, and turned into the new primary's replica by the Sentinels
        wait_until(
            lambda: (
                sentinels._role(old) == "slave"
                and sentinels._node(old).info("replication").get("master_link_status") == "up"
            ),
            what=f"port {old} to be the new primary's replica",
            timeout=60,
            every=0.2,
        )
        self.recovery[STEPS[1]] = f"{served:.1f} s"
        return (
            f"primary on port {old} killed; the Sentinels promoted port {new} after {promoted:.1f} s; "
            f"health 200 through nginx after {served:.1f} s; port {old} started again, now its replica"
        )

    def kill_cluster_primary(self) -> str:
        cluster = self.topology.cluster
        primary = cluster.holder_of("topic:*")
        expect(primary is not None, "no cluster primary holds the topic's stream")
        replica = cluster.replica_of(primary)
        keys = [key.split(":", 2)[2] for key in cluster.keys_on(primary, "cache:*", 3)]
        expect(keys, f"no cache item on port {primary}")
        headers = {**self.auth, "Content-Type": "text/plain"}
        cluster.nodes[primary].kill()
        killed = time.monotonic()

        seen: list = []

        def serving(client: httpx.Client) -> bool:
            # The killed primary's cache items written and read again, and a publish to the topic it held.
            seen[:] = []
            for key in keys:
                params = {"key": key, "ttl_seconds": 600}
                seen.append(
                    _status(lambda p=params: client.put("/cache/ha", params=p, content=b"x", headers=self.auth))
                )
                seen.append(_status(lambda k=key: client.get("/cache/ha", params={"key": k}, headers=self.auth)))
            text = f"probe{next(self.counter)}"  # not one of the published messages counted for the subscribers
            seen.append(_status(lambda: client.post(TOPIC, content=text, headers=headers)))
            return seen == [204, 200] * len(keys) + [204]

        with self.topology.client(timeout=5) as probe:
            try:
                wait_until(lambda: serving(probe), what="the killed primary's slots to serve", timeout=60, every=0.1)
            except TimeoutError as error:
                raise CheckFailed(f"{error} Last answers (PUT, GET, ..., publish): {seen}") from None
        served = time.monotonic() - killed
        view = cluster.view()
        expect(view.get(replica, {}).get("role") == "primary", f"port {replica} was not promoted: {view}")
        cluster.start_node(primary)  # back, as the replica of its old replica
        wait_until(cluster.healthy, what="the cluster to have a replica for every primary again", timeout=60)
        self.recovery[STEPS[2]] = f"{served:.1f} s"
        return (
            f"primary on port {primary} (the topic's stream, cache items {', '.join(keys)}) killed; "
            f"its replica {replica} promoted; those keys and a publish served again after {served:.1f} s; "
            f"port {primary} started again, now a replica"
        )

    def fault(self, step: str, run) -> None:
        self.traffic.step = step
        started = time.monotonic()
        ok = self.report.check(f"{step}: recovered", run)
        left = 10 - (time.monotonic() - started)
        time.sleep(max(left, 3))  # traffic goes on before the next one
        failed, unclean = self.traffic.failed(step), self.traffic.unclean(step)
        self.traffic.step = f"after {step[:2]}"

        def requests() -> str:
            expect(not unclean, f"{len(unclean)} not a 503 with a JSON body: {describe(unclean)}")
            return f"{len(self.traffic.of(step))} requests, failed: {describe(failed)}"

        self.report.check(f"{step}: requests failed only with a 503 and a JSON body", requests)
        if not ok:
            raise CheckFailed(f"{step}: not recovered; the run stops")

    def run(self) -> None:
        self.prepare()
        self.start_traffic()
        time.sleep(5)
        self.fault(STEPS[0], self.kill_leading_scheduler)
        self.fault(STEPS[1], self.kill_redis_primary)
        self.fault(STEPS[2], self.kill_cluster_primary)
        self.traffic.step = "after"
        # One more minute's run after the faults, then the last messages read and the last jobs done.
        next_minute = 68 - datetime.now(UTC).second
        self.report.say(f"Traffic goes on for {next_minute} s more (the schedule's next run).")
        time.sleep(next_minute)
        self.publishing.set()
        self.creating_jobs.set()
        last = set(self.published[-20:])
        poll(lambda: last <= self.poller.texts() and last <= self.streamer.texts(), timeout=20, every=0.2)
        poll(lambda: self.jobs_pending() == 0, timeout=60, every=0.5)
        stuck = self.traffic.stop()
        check = self.report.check
        check("the client loops stopped", lambda: "all" if not stuck else _fail(f"still running: {stuck}"))
        self.report.say()
        check("the whole run: requests failed only with a 503 and a JSON body", self.all_requests)
        check(
            "schedule periods sent exactly once (each Idempotency-Key once; each subscription advanced once a period)",
            self.schedule_periods,
        )
        check("periodic ticks run twice: 0", self.periodic_ticks)
        check("jobs lost: 0 (every job created succeeded and reached the target)", self.jobs_lost)
        check("topic messages lost silently: 0 (received, or announced by a discontinuity)", self.topic_messages)
        check("every process of the topology running at the end", self.all_running)

    # --- the overall checks ---

    def all_requests(self) -> str:
        outcomes, failed, unclean = self.traffic.of(), self.traffic.failed(), self.traffic.unclean()
        expect(not unclean, f"{len(unclean)} not a 503 with a JSON body: {describe(unclean)}")
        kinds = Counter(outcome.kind for outcome in outcomes)
        lost_items = sum(1 for o in outcomes if o.kind == "cache GET" and o.status == 404)
        return (
            f"{len(outcomes)} requests ({', '.join(f'{k} {n}' for k, n in kinds.items())}); "
            f"failed: {describe(failed)}; cache GETs of an item just stored that found none: {lost_items}"
        )

    def schedule_periods(self) -> str:
        keys = Counter(r.key for r in self.topology.sender.received("/outbound/"))
        twice = {key: n for key, n in keys.items() if n > 1}
        expect(not twice, f"sent more than once: {twice}")
        rows = self.topology.query(
            "SELECT id::text, next_sequence_number FROM subscriptions_subscription WHERE id::text = ANY(%s)",
            self.subscriptions,
        )
        positions = dict(rows)
        sent = {s: sorted(int(k.split(":")[1]) for k in keys if k.split(":")[0] == s) for s in self.subscriptions}
        periods = {len(numbers) for numbers in sent.values()}
        expect(len(periods) == 1, f"subscriptions sent different numbers of messages: {sent}")
        (count,) = periods
        expect(count >= 2, f"only {count} period(s) sent during the run")
        expect(all(numbers == list(range(1, count + 1)) for numbers in sent.values()), sent)
        expect(all(positions[s] == count + 1 for s in self.subscriptions), f"positions: {positions}")
        fires = sorted({tick for entry, tick, _ in self.ticks() if entry != ENTRY})
        expect(len(fires) == count, f"{len(fires)} runs of the schedule recorded, {count} messages each")
        first = {}  # period -> when its first message reached the sender
        for received in self.topology.sender.received("/outbound/"):
            first.setdefault(int(received.key.split(":")[1]), received.at)
        at = ", ".join(
            f"{datetime.fromtimestamp(t, UTC):%H:%M} sent at {datetime.fromtimestamp(first[n], UTC):%H:%M:%S.%f}"[:-3]
            for n, t in enumerate(fires, 1)
        )
        return (
            f"{count} periods ({at}), {SUBSCRIPTIONS} subscriptions: {sum(keys.values())} messages, each key once; "
            f"every subscription at message {count + 1}"
        )

    def periodic_ticks(self) -> str:
        ticks = [(tick, token) for entry, tick, token in self.ticks() if entry == ENTRY]
        seconds = [tick for tick, _ in ticks]
        duplicates = len(seconds) - len(set(seconds))
        expect(duplicates == 0, f"{duplicates} ticks run twice")
        ordered = sorted(seconds)
        longest = max((b - a - 1 for a, b in itertools.pairwise(ordered)), default=0)
        tokens = Counter(token for _, token in ticks)
        return (
            f"{len(ticks)} ticks, none twice, under lease tokens {dict(sorted(tokens.items()))}; "
            f"longest stretch without a tick {longest:.0f} s"
        )

    def jobs_pending(self) -> int:
        rows = self.topology.query(
            "SELECT count(*) FROM jobs_job WHERE id::text = ANY(%s) AND state <> 'succeeded'", list(self.jobs)
        )
        return rows[0][0]

    def jobs_lost(self) -> str:
        rows = self.topology.query(
            "SELECT id::text, state, delivery_id::text FROM jobs_job WHERE id::text = ANY(%s)", list(self.jobs)
        )
        received = Counter(r.key for r in self.topology.target.matching(lambda r: r.path.startswith("/job/")))
        states = Counter(state for _, state, _ in rows)
        not_succeeded = [job for job, state, _ in rows if state != "succeeded"]
        never_received = [job for job, _, delivery in rows if delivery not in received]
        expect(len(rows) == len(self.jobs), f"{len(self.jobs) - len(rows)} jobs created are not in the database")
        expect(not not_succeeded, f"not succeeded: {len(not_succeeded)} ({dict(states)})")
        expect(not never_received, f"never reached the target: {len(never_received)}")
        again = sum(n - 1 for n in received.values() if n > 1)
        return f"{len(self.jobs)} jobs created, all succeeded and received by the target ({again} received again)"

    def topic_messages(self) -> str:
        out, silent_total = [], 0
        for subscriber in (self.poller, self.streamer):
            announced, silent, twice = missed(subscriber.log, self.published)
            gaps = sum(1 for kind, _ in subscriber.log if kind == "gap")
            silent_total += len(silent)
            out.append(
                f"{subscriber.name}: {len(subscriber.texts() & set(self.published))} received, "
                f"{len(announced)} announced as missed ({gaps} discontinuities), {len(silent)} lost silently"
                + (f" {silent[:10]}" if silent else "")
                + (f", {twice} received twice" if twice else "")
                + (f", {subscriber.ends} streams ended by the server" if subscriber.name == "SSE" else "")
            )
        expect(silent_total == 0, f"{len(self.published)} published; " + "; ".join(out))
        return f"{len(self.published)} published and acknowledged; " + "; ".join(out)

    def all_running(self) -> str:
        stopped = [p.name for p in self.topology.processes.started if not p.alive]
        stores = self.topology.sentinels.nodes | self.topology.cluster.nodes
        stopped += [name for name, p in (("redis", p) for p in stores.values()) if not p.alive]
        stopped += [p.name for p in self.topology.sentinels.sentinels if not p.alive]
        expect(not stopped, f"stopped: {stopped}")
        return (
            f"{WEB_PROCESSES} web, {WORKERS} workers, {SCHEDULERS} schedulers, nginx, 2 Redis + 3 Sentinels, "
            f"{len(self.topology.cluster.nodes)} cluster nodes"
        )

    def close(self) -> None:
        self.traffic.stop()
        for client in self.clients:
            client.close()


def _status(send) -> int | None:
    try:
        return send().status_code
    except httpx.HTTPError:
        return None


def _fail(message: str) -> str:
    raise CheckFailed(message)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # stops the run as Ctrl-C does: everything started is stopped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-logs", action="store_true", help="print every process's log tail even on success")
    args = parser.parse_args()
    for program in ("nginx", "openssl", "redis-server", "redis-cli", "rabbitmqctl"):
        if shutil.which(program) is None:
            print(f"{program} is not installed (docs/reliability.md says what the run needs)", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _terminate)
    report = Report()
    tmp = Path(tempfile.mkdtemp(prefix="sbm-topology-ha-"))
    tmp.chmod(0o755)  # nginx's workers (another user when started as root) read the media and write temp files
    for name in ("logs", "sentinel", "cluster"):
        (tmp / name).mkdir()
    started = time.monotonic()
    report.say(f"# HA topology run, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    report.say()
    sentinels = SentinelGroup(
        tmp / "sentinel",
        master_name=MASTER_NAME,
        password=secrets.token_hex(16),
        sentinel_password=secrets.token_hex(16),
    )
    cluster = ReplicatedCluster(tmp / "cluster")
    vhost = RabbitVhost()
    topology = run = None
    failed_to_run = False
    try:
        sentinels.start()
        cluster.start()
        vhost.create()
        topology = HATopology(report, tmp, sentinels, cluster, vhost)
        report.say(
            f"nginx https://127.0.0.1:{topology.https_port} -> web {', '.join(map(str, topology.web_ports))}; "
            f"{WORKERS} workers; {SCHEDULERS} schedulers; Redis primary + replica on {sentinels.node_ports} "
            f"with Sentinels on {sentinels.sentinel_ports} (down-after {redis_servers.DOWN_AFTER_MS} ms, "
            f"failover-timeout {redis_servers.FAILOVER_TIMEOUT_MS} ms); Redis Cluster of 3 primaries + 3 replicas "
            f"on {cluster.ports} (cluster-node-timeout {CLUSTER_NODE_TIMEOUT_MS} ms); RabbitMQ vhost {vhost.name}; "
            f"PostgreSQL database {DATABASE}; message sender {topology.sender.url}; job target {topology.target.url}"
        )
        report.say()
        topology.prepare_storage()
        topology.certificate()
        topology.manage("migrate", "--noinput", "-v0")
        topology.manage("collectstatic", "--noinput", "-v0")
        topology.start_processes()
        topology.wait_until_up()
        report.say(f"Up after {time.monotonic() - started:.1f} s.")
        report.say()
        run = Run(topology, report)
        run.run()
    except (Exception, KeyboardInterrupt) as error:
        failed_to_run = True
        report.say("The run stopped:")
        report.say("interrupted" if isinstance(error, KeyboardInterrupt) else traceback.format_exc())
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up is not cut short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        passed = sum(ok for _, ok, _ in report.results)
        failed = failed_to_run or passed < len(report.results) or not report.results
        if run is not None:
            with contextlib.suppress(Exception):
                run.close()
            if run.recovery:
                report.say()
                report.say("Recovered after: " + "; ".join(f"{k}: {v}" for k, v in run.recovery.items()))
        if topology is not None and (failed or args.keep_logs):
            report.say()
            for line in topology.log_tails():
                report.say(line)
        cleanups = [sentinels.stop, cluster.stop, vhost.delete]
        if topology is not None:
            cleanups.insert(0, topology.stop)
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception as error:  # the others still run
                report.say(f"Clean-up {cleanup.__qualname__} failed: {error}")
        shutil.rmtree(tmp, ignore_errors=True)
        report.say()
        report.say(
            f"{passed} of {len(report.results)} checks passed in {time.monotonic() - started:.0f} s; every process "
            f"stopped, database {DATABASE} dropped, vhost {vhost.name} deleted."
        )
        report.write("topology-ha")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
