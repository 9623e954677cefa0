"""Benchmark: one schedule fire to 100,000 active subscriptions, outbound to a local sink.

    .venv/bin/python bench/subscriptions_send.py [--subscriptions 100000] [--workers 2] [--skip-kill] [--events]
        [--baseline-seconds 5] [--baseline-connections 64]

Uses the PostgreSQL database `subscriptions_bench` (made afresh, migrated, the
subscriptions written with COPY; its size and the subscriptions table's are
recorded) and Redis database 9 (flushed: it is the broker too). Needs wrk
(`apt-get install wrk`). Starts, on 127.0.0.1 only: the sink
(`bench/subscriptions_sink.py`, a fast message sender that counts deliveries and
duplicates by Idempotency-Key) and `--workers` Celery workers (one process each,
`-P threads -c 2` by default). Then:

1. **Baseline**: the sink's own capacity, the ceiling of any client: wrk (2
   threads) keeps --baseline-connections connections alive and busy for
   --baseline-seconds with the request the service sends (`POST /outbound/`, the
   benchmark's JSON body, an Idempotency-Key) plus `X-Baseline: 1`, which the
   sink answers the same way but counts only as load.
2. **Fire**: the schedule's send task is queued; measured: time from the fire to
   the sink's last delivery, sends/s (with its ratio to the sink's capacity), each
   worker's peak memory (VmHWM), duplicates, subscriptions advanced.
   Goals: 100,000 within 20 s (>= 5,000 sends/s), worker peak <= 300 MB,
   0 duplicates, each subscription advanced exactly once.
3. **Kill** (unless --skip-kill): the same again (subscriptions reset, a new send), one worker is
   killed with SIGKILL when a third of the messages are delivered, a replacement
   is started, and once the queue has drained the fire is run again. Measured:
   subscriptions lost (not advanced), advanced without delivery (advanced, but
   their key never reached the sink), duplicates (deliveries of a key already
   delivered: the ones the idempotency key lets the sink drop).
4. **Events** (with --events): the fire again with the messaging events off, then
   on (MESSAGING_EVENTS_TOPIC, a topic nobody subscribes to); goal: on <= 1.10 x off.

Bounded in time (each wait gives up after --timeout seconds); stops everything
it started. Prints the table and writes it to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import subprocess
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import (
    PYTHON,
    ROOT,
    celery_worker,
    find_wrk,
    fresh_database,
    machine,
    ratio,
    sink_capacity,
    wait_for_workers,
    write_results,
)

from harness.processes import Process, stop_all
from harness.waiting import free_port, wait_for_port, wait_until

DATABASE_NAME = "subscriptions_bench"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/9"
MESSAGE_TEXT = "Message {number} in eng: a benchmark message of a usual length for an SMS."
SENDS_GOAL = 5_000  # sends/s: 100,000 within 20 s
MEMORY_GOAL_MB = 300
# The NOT NULL columns of subscriptions_subscription, as a ready subscription has them; the others
# (metadata, created_by_id, updated_by_id, last_run_id) are left NULL.
COPY_COLUMNS = (
    "id",
    "identity",
    "version",
    "messageset_id",
    "initial_sequence_number",
    "next_sequence_number",
    "lang",
    "active",
    "completed",
    "schedule_id",
    "process_status",
    "created_at",
    "updated_at",
)


def environment(sink_port: int, arguments) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        SECRET_KEY=secrets.token_urlsafe(40),
        JOBS_SIGNING_KEY=secrets.token_urlsafe(32),
        DEBUG="false",
        LOG_LEVEL="WARNING",
        MESSAGE_SENDER_URL=f"http://127.0.0.1:{sink_port}",
        MESSAGE_SENDER_TOKEN=secrets.token_hex(8),
        SEND_BATCH_SIZE=str(arguments.batch_size),
        SEND_CONCURRENCY=str(arguments.concurrency),
    )
    env.pop("IDENTITY_STORE_URL", None)
    return env


def sink_call(port: int, path: str, body: bytes | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST" if body else "GET")
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def peak_memory_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Workers:
    def __init__(self, env: dict[str, str], log_dir: Path, pool: str, concurrency: int):
        self.env = env
        self.pool = pool
        self.concurrency = concurrency
        self.log_dir = log_dir
        self.processes: list[Process] = []
        self.peaks: dict[int, float] = {}

    def start(self) -> Process:
        number = len(self.processes) + 1
        command = celery_worker("-P", self.pool, "-c", str(self.concurrency), "-n", f"bench{number}@%h")
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        process = Process(f"worker-{number}", command, env=self.env, log=self.log_dir / f"worker-{number}.log")
        self.processes.append(process.start())
        return process

    def note_peaks(self) -> None:
        for process in self.processes:
            peak = peak_memory_mb(process.pid)
            if peak is not None:
                self.peaks[process.pid] = max(peak, self.peaks.get(process.pid, 0))

    def kill(self, process: Process) -> None:
        self.note_peaks()
        process.kill()

    def stop(self) -> None:
        self.note_peaks()
        stop_all(self.processes, grace=15)


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def make_data(count: int) -> int:
    """A weekly schedule, a 3-message text set and `count` ready subscriptions on it; the schedule's id."""
    from django.db import connection

    from contentstore import services as content
    from contentstore.models import MessageSet, Schedule

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE subscriptions_subscription, subscriptions_sendrun, subscriptions_sendbatch, "
            "subscriptions_subscriptionsendfailure, subscriptions_resendrequest, subscriptions_behindsubscription, "
            "subscriptions_estimatedsend CASCADE"
        )
    for messageset in MessageSet.objects.all():
        messageset.messages.all().delete()
        messageset.delete()
    for schedule in Schedule.objects.all():
        content.schedule_delete(schedule=schedule)
    schedule = content.schedule_create(minute="0", hour="8", day_of_week="1")
    messageset = content.messageset_create(short_name="bench", default_schedule=schedule)
    for number in range(1, 4):
        content.message_create(
            messageset=messageset,
            sequence_number=number,
            lang="eng",
            text_content=MESSAGE_TEXT.format(number=number),
        )
    copy_subscriptions(count, messageset_id=messageset.pk, schedule_id=schedule.pk)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE subscriptions_subscription")
    return schedule.pk


def copy_subscriptions(count: int, *, messageset_id: int, schedule_id: int) -> None:
    """`count` ready subscriptions (identity = their number, 36 digits) written with one COPY, in chunks of rows,
    created a microsecond apart as if one by one. About 4x as fast as bulk_create: 100,000 in 2.4 s against
    8.6 s on the 2-core VM, most of it PostgreSQL's (the rows' text takes 0.5 s)."""
    from django.db import connection, transaction

    created = datetime.now(UTC) - timedelta(microseconds=count)
    fixed = f"1\t{messageset_id}\t1\t1\teng\tt\tf\t{schedule_id}\t0"
    statement = f"COPY subscriptions_subscription ({', '.join(COPY_COLUMNS)}) FROM STDIN"
    chunk = 20_000
    with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for start in range(0, count, chunk):
            rows = []
            for number in range(start, min(start + chunk, count)):
                at = (created + timedelta(microseconds=number)).isoformat()
                rows.append(f"{uuid.uuid4()}\t{number:036d}\t{fixed}\t{at}\t{at}\n")
            copy.write("".join(rows))


def database_sizes() -> dict:
    """The database's size and the subscriptions table's (heap, its indexes), in bytes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_database_size(current_database()), pg_total_relation_size('subscriptions_subscription'), "
            "pg_relation_size('subscriptions_subscription'), pg_indexes_size('subscriptions_subscription')"
        )
        database, table, heap, indexes = cursor.fetchone()
    return {"database": database, "table": table, "heap": heap, "indexes": indexes}


def outbound_request(token: str) -> tuple[bytes, dict[str, str]]:
    """The request the service sends the sink for a subscription's first message (body and headers), marked
    `X-Baseline: 1` so that the sink counts it only as load."""
    payload = {
        "to_identity": f"{0:036d}",
        "delivered": "false",
        "resend": "false",
        "metadata": {},
        "content": MESSAGE_TEXT.format(number=1),
    }
    headers = {
        "Authorization": f"Token {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Idempotency-Key": f"{uuid.uuid4()}:1",
        "X-Baseline": "1",
    }
    return json.dumps(payload, separators=(",", ":")).encode(), headers


def reset_sends() -> None:
    from subscriptions.models import SendRun, Subscription

    SendRun.objects.all().delete()
    Subscription.objects.update(next_sequence_number=1, last_run=None)


def run_state() -> tuple[bool, int, int]:
    """(whether the send finished, subscriptions advanced, batches pending)."""
    from subscriptions.models import SendBatch, SendRun, Subscription

    finished = SendRun.objects.filter(finished_at__isnull=False).exists()
    advanced = Subscription.objects.filter(next_sequence_number=2).count()
    pending = SendBatch.objects.filter(done_at__isnull=True).count()
    return finished, advanced, pending


def fire(app, schedule_id: int) -> float:
    started = time.time()
    app.send_task("subscriptions.send_schedule", args=[schedule_id])
    return started


def queue_length(app) -> int:
    with app.connection_for_read() as connection:
        return connection.default_channel.client.llen(app.conf.task_default_queue)


def scenario_fire(app, workers: Workers, sink_port: int, schedule_id: int, count: int, timeout: float) -> dict:
    sink_call(sink_port, "/_reset", b"{}")
    started = fire(app, schedule_id)
    wait_until(lambda: sink_call(sink_port, "/_stats")["distinct"] >= count, what="every delivery", timeout=timeout)
    wait_until(lambda: run_state()[0], what="the send to finish", timeout=timeout)
    finished_at = time.time()
    workers.note_peaks()
    stats = sink_call(sink_port, "/_stats")
    _, advanced, _ = run_state()
    seconds = stats["last"] - started
    return {
        "fire_to_last_delivery_s": seconds,
        "fire_to_finished_s": finished_at - started,
        "sends_per_s": count / seconds,
        "deliveries": stats["deliveries"],
        "duplicates": stats["duplicates"],
        "advanced": advanced,
        "advanced_beyond_one": advanced_beyond_one(),
    }


def advanced_beyond_one() -> int:
    from subscriptions.models import Subscription

    return Subscription.objects.filter(next_sequence_number__gt=2).count()


def scenario_kill(app, workers: Workers, sink_port: int, schedule_id: int, count: int, timeout: float) -> dict:
    from subscriptions.models import Subscription

    reset_sends()
    sink_call(sink_port, "/_reset", b"{}")
    started = fire(app, schedule_id)
    third = count // 3
    wait_until(lambda: sink_call(sink_port, "/_stats")["deliveries"] >= third, what="a third", timeout=timeout)
    victim = workers.processes[0]
    workers.kill(victim)
    killed_at = time.time()
    delivered_at_kill = sink_call(sink_port, "/_stats")["deliveries"]
    workers.start()

    def drained() -> bool:
        before = sink_call(sink_port, "/_stats")["deliveries"]
        time.sleep(1.0)
        return queue_length(app) == 0 and sink_call(sink_port, "/_stats")["deliveries"] == before

    wait_until(drained, what="the queue to drain", timeout=timeout, every=0)
    stalled = run_state()
    refired = fire(app, schedule_id)
    wait_until(lambda: run_state()[0], what="the re-run send to finish", timeout=timeout)
    finished_at = time.time()
    workers.note_peaks()
    stats = sink_call(sink_port, "/_stats")
    with tempfile.NamedTemporaryFile("r", suffix=".keys") as keys_file:
        sink_call(sink_port, "/_keys", keys_file.name.encode())
        delivered = {line.strip() for line in Path(keys_file.name).read_text().splitlines() if line.strip()}
    advanced_ids = Subscription.objects.filter(next_sequence_number=2).values_list("id", flat=True)
    without_delivery = sum(1 for subscription_id in advanced_ids.iterator() if f"{subscription_id}:1" not in delivered)
    advanced = Subscription.objects.filter(next_sequence_number=2).count()
    return {
        "delivered_when_killed": delivered_at_kill,
        "advanced_before_rerun": stalled[1],
        "pending_batches_before_rerun": stalled[2],
        "kill_to_rerun_s": refired - killed_at,
        "rerun_to_finished_s": finished_at - refired,
        "fire_to_finished_s": finished_at - started,
        "deliveries": stats["deliveries"],
        "distinct": stats["distinct"],
        "duplicates": stats["duplicates"],
        "without_key": stats["without_key"],
        "lost": count - advanced,
        "advanced_without_delivery": without_delivery,
        "advanced": advanced,
        "advanced_beyond_one": advanced_beyond_one(),
    }


def scenario_events(app, workers: Workers, sink_port: int, schedule_id: int, arguments) -> dict:
    """The fire again with events off, then on (MESSAGING_EVENTS_TOPIC, a topic nobody subscribes to),
    the workers restarted with the setting; the subscriptions reset before each."""
    import redis

    from cache_api.models import Cache
    from subscriptions.metrics import METRICS_KEY

    Cache.objects.get_or_create(name="bench")
    plain = {key: value for key, value in workers.env.items() if key != "MESSAGING_EVENTS_TOPIC"}
    figures = {}
    for label, env in (("off", plain), ("on", {**plain, "MESSAGING_EVENTS_TOPIC": "bench/messaging-events"})):
        workers.stop()
        workers.env, workers.processes = env, []
        for _ in range(arguments.workers):
            workers.start()
        wait_for_workers(app, arguments.workers)
        reset_sends()
        figures[label] = scenario_fire(app, workers, sink_port, schedule_id, arguments.subscriptions, arguments.timeout)
        print(label, json.dumps(figures[label]), flush=True)
    published = redis.Redis.from_url(REDIS_URL).hget(METRICS_KEY, "sbm_events_published{}")
    figures["published"] = int(float(published or 0))
    return figures


def megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MB"


def events_lines(arguments, events: dict) -> list[str]:
    off, on = events["off"]["fire_to_last_delivery_s"], events["on"]["fire_to_last_delivery_s"]
    return [
        "",
        "The fire again, events off then on (MESSAGING_EVENTS_TOPIC, workers restarted, subscriptions reset):",
        "",
        "| what | events off | events on | goal |",
        "|---|---|---|---|",
        f"| fire to last delivery | {off:.1f} s | {on:.1f} s | on <= 1.10 x off |",
        f"| ratio on / off | | {on / off:.3f} | <= 1.10 |",
        f"| events published | | {events['published']:,} | {arguments.subscriptions:,} (message sent) |",
        f"| duplicates | {events['off']['duplicates']} | {events['on']['duplicates']} | 0 |",
    ]


def table(
    arguments, base: dict, sizes: dict, first: dict, killed: dict | None, peaks: dict[int, float], events: dict | None
) -> str:
    peak = max(peaks.values()) if peaks else float("nan")
    count = arguments.subscriptions
    capacity = base["rate"]
    advanced_once = first["advanced"] - first["advanced_beyond_one"]
    lines = [
        f"# Schedule send benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {platform.node()}, {machine()}; PostgreSQL, Redis, sink and workers on the same machine (loopback).",
        f"{count:,} subscriptions on one schedule; {arguments.workers} Celery worker processes "
        f"(`-P {arguments.pool} -c {arguments.worker_concurrency}`), "
        f"SEND_BATCH_SIZE={arguments.batch_size}, SEND_CONCURRENCY={arguments.concurrency}.",
        f"Baseline: wrk -t2 for {base['seconds']} s, `POST /outbound/` with the service's body "
        f"({base['body_bytes']} bytes) and headers, to the sink alone: the most any client could get from it here.",
        f"Data: {count:,} subscriptions written with COPY, then VACUUM ANALYZE, in {arguments.data_seconds:.1f} s.",
        "",
        "| what | figure | goal |",
        "|---|---|---|",
        f"| sink capacity (wrk, {base['connections']} connections, kept alive) | {capacity:,.0f} requests/s | |",
        f"| database size after the data is made | {megabytes(sizes['database'])} | |",
        f"| subscriptions table (heap + indexes) | {megabytes(sizes['table'])} "
        f"({megabytes(sizes['heap'])} + {megabytes(sizes['indexes'])}) | |",
        f"| fire to last delivery | {first['fire_to_last_delivery_s']:.1f} s "
        f"| <= {count / SENDS_GOAL:,.4g} s ({count:,} at {SENDS_GOAL:,}/s) |",
        f"| fire to send finished (last batch recorded) | {first['fire_to_finished_s']:.1f} s | |",
        f"| sends/s (fire to last delivery) | {first['sends_per_s']:,.0f} sends/s "
        f"({ratio(first['sends_per_s'], capacity)}) | >= {SENDS_GOAL:,} |",
        f"| worker peak memory (VmHWM, largest worker) | {peak:.0f} MB | <= {MEMORY_GOAL_MB} MB |",
        f"| duplicates | {first['duplicates']} | 0 |",
        f"| subscriptions advanced exactly once | {advanced_once:,} "
        f"({first['advanced_beyond_one']} more than once) | {count:,} (0 more than once) |",
    ]
    if killed:
        lines += [
            "",
            "One worker killed (SIGKILL) when a third was delivered, a replacement started, the fire run again:",
            "",
            "| what | figure | goal |",
            "|---|---|---|",
            f"| delivered when killed | {killed['delivered_when_killed']:,} | |",
            f"| advanced before the re-run | {killed['advanced_before_rerun']:,} "
            f"({killed['pending_batches_before_rerun']} batch(es) left unfinished) | |",
            f"| re-run to send finished | {killed['rerun_to_finished_s']:.1f} s | |",
            f"| lost (not advanced) | {killed['lost']} | 0 |",
            f"| advanced without delivery | {killed['advanced_without_delivery']} | 0 |",
            f"| advanced by more than one | {killed['advanced_beyond_one']} | 0 |",
            f"| duplicates (same Idempotency-Key delivered again) | {killed['duplicates']} | only these |",
            f"| deliveries without Idempotency-Key | {killed['without_key']} | 0 |",
            f"| subscriptions advanced | {killed['advanced']:,} | {count:,} |",
        ]
    if events:
        lines += events_lines(arguments, events)
    lines += ["", f"Worker peaks (MB): {', '.join(f'{value:.0f}' for value in peaks.values())}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", choices=["solo", "threads"], default="threads", help="each worker's Celery pool")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="send tasks each worker runs at once")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16, help="SEND_CONCURRENCY of each worker")
    parser.add_argument(
        "--timeout", type=float, help="seconds each wait may take (default: 240, or subscriptions / 500 if more)"
    )
    parser.add_argument("--skip-kill", action="store_true", help="run the fire only, not the worker kill")
    parser.add_argument(
        "--events", action="store_true", help="then the fire with the messaging events off and on, and their ratio"
    )
    parser.add_argument("--baseline-seconds", type=int, default=5, help="how long wrk loads the sink")
    parser.add_argument("--baseline-connections", type=int, default=64, help="wrk's kept-alive connections")
    arguments = parser.parse_args()
    if arguments.timeout is None:
        arguments.timeout = max(240.0, arguments.subscriptions / 500)
    find_wrk()

    sink_port = free_port()
    env = environment(sink_port, arguments)
    fresh_database(DATABASE_NAME)
    subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    setup_django(env)
    from config.celery import app

    print(f"Making {arguments.subscriptions:,} subscriptions...", flush=True)
    made = time.monotonic()
    schedule_id = make_data(arguments.subscriptions)
    arguments.data_seconds = time.monotonic() - made
    sizes = database_sizes()
    print(f"Made in {arguments.data_seconds:.1f} s; database {megabytes(sizes['database'])}", flush=True)

    log_dir = Path(tempfile.mkdtemp(prefix="bench-subscriptions-"))
    sink = Process("sink", [PYTHON, str(ROOT / "bench" / "subscriptions_sink.py"), "serve", "--port", str(sink_port)])
    sink.start()
    workers = Workers(env, log_dir, arguments.pool, arguments.worker_concurrency)
    try:
        wait_for_port(sink_port)
        print("Measuring the sink's capacity...", flush=True)
        body, headers = outbound_request(env["MESSAGE_SENDER_TOKEN"])
        base = {
            "rate": sink_capacity(
                f"http://127.0.0.1:{sink_port}/outbound/",
                body=body,
                headers=headers,
                seconds=arguments.baseline_seconds,
                connections=arguments.baseline_connections,
            ),
            "connections": arguments.baseline_connections,
            "seconds": arguments.baseline_seconds,
            "body_bytes": len(body),
        }
        print(f"Sink capacity: {base['rate']:,.0f} requests/s", flush=True)
        for _ in range(arguments.workers):
            workers.start()
        wait_for_workers(app, arguments.workers)
        print("Fire...", flush=True)
        first = scenario_fire(app, workers, sink_port, schedule_id, arguments.subscriptions, arguments.timeout)
        print(json.dumps(first), flush=True)
        killed = None
        if not arguments.skip_kill:
            print("Fire with a worker killed...", flush=True)
            killed = scenario_kill(app, workers, sink_port, schedule_id, arguments.subscriptions, arguments.timeout)
            print(json.dumps(killed), flush=True)
        events = None
        if arguments.events:
            print("Fire with events off, then on...", flush=True)
            events = scenario_events(app, workers, sink_port, schedule_id, arguments)
    finally:
        workers.stop()
        sink.stop(grace=10)
    result = table(arguments, base, sizes, first, killed, workers.peaks, events)
    write_results("subscriptions", result)
    print(f"Worker logs in {log_dir}")


if __name__ == "__main__":
    main()
