"""Benchmark of job queues: the same burst of jobs with and without queues, in the same run.

    .venv/bin/python bench/jobs_queues.py [--jobs 10000] [--queues 100] [--parallelism 2] [--rounds 2]
        [--delay-ms 5]

Starts what it needs on this machine, as `jobs_dispatch.py` does (its sink, a dispatcher,
a Celery worker), against a database (`jobs_queues_bench`) and a Redis database (13) of its
own. The sink's path /q/<n> stands for the target of queue n: it answers after --delay-ms and
keeps the most requests it held at once per path (from the request to its answer).

Each round sends --jobs jobs due in the same second to the --queues paths (an equal share each), first
without queues (the baseline: as fast as the service sends), then each path's jobs in a
queue of its own with --parallelism. For each: delivered jobs/s from the due time to the
last delivery and from the first delivery to the last, and the most requests any one path
held at once. Goals: the queued throughput within 20% of the unqueued one (the ratio of
the medians of the rounds >= 0.8), and no path ever holding more than --parallelism.

The table is printed and written to bench/results/jobs-queues-<date>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.request import urlopen

from common import (
    PYTHON,
    ROOT,
    celery_worker,
    cpu_seconds,
    cpu_seconds_named,
    fresh_database,
    processes_now,
    wait_for_workers,
    write_results,
)
from jobs_dispatch import ENVIRONMENT as JOBS_ENVIRONMENT
from jobs_dispatch import WORKER_CONCURRENCY, jobs_done, sink_reset

from harness.processes import Processes
from harness.waiting import free_port, poll, wait_for_port

LOGS = ROOT / "var" / "bench-jobs-queues"
DATABASE = "jobs_queues_bench"
DATABASE_SERVER = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_QUEUES_REDIS_URL", "redis://127.0.0.1:6379/13")
RATIO_GOAL = 0.8
ENVIRONMENT = {**JOBS_ENVIRONMENT, "DATABASE_URL": f"{DATABASE_SERVER}/{DATABASE}", "REDIS_URL": REDIS_URL}
WARM_UP = 200


def prepare() -> None:
    import redis

    fresh_database(DATABASE, DATABASE_SERVER)
    environment = {**os.environ, **ENVIRONMENT}
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=environment, check=True)
    redis.Redis.from_url(REDIS_URL).flushdb()
    os.environ.update(ENVIRONMENT)
    import django

    django.setup()


def sink_stats(sink: str) -> tuple[list[tuple[str, str, float]], dict[str, int]]:
    """The sink's hits since its last reset, and the most requests each /q/ path held at once."""
    with urlopen(f"{sink}/_stats", timeout=60) as response:  # noqa: S310 - the local sink
        stats = json.load(response)
    return [tuple(hit) for hit in stats["hits"]], stats["most_in_flight"]


def schedule(sink: str, *, count: int, paths: int, parallelism: int | None) -> tuple[datetime, dict[str, int]]:
    """`count` jobs due at `due` to the sink's /q/<n>, `count / paths` each, each path's in a queue of its own
    when `parallelism` is given; when they are due, and the path number of each delivery id."""
    from accounts.models import User
    from jobs import services
    from jobs.models import Attempt, Job, JobQueue

    Attempt.objects.all().delete()
    Job.objects.all().delete()
    JobQueue.objects.all().delete()
    user, _ = User.objects.get_or_create(username="bench@example.org", defaults={"email": "bench@example.org"})
    queues = [None] * paths
    if parallelism is not None:
        queues = [services.queue_set(user=user, name=f"q{n}", parallelism=parallelism)[0] for n in range(paths)]
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)  # once the earlier run is cleared away
    path_of = [n * paths // count for n in range(count)]  # each path's jobs together, as a backlog would be
    jobs = [
        Job(
            user=user,
            uri=f"{sink}/q/{path_of[n]}",
            method="POST",
            at=due,
            next_attempt_at=due,
            timeout=5,
            body="{}",
            queue=queues[path_of[n]],
        )
        for n in range(count)
    ]
    Job.objects.bulk_create(jobs, batch_size=2000)
    if datetime.now(UTC) > due:
        print(f"Warning: the jobs were stored {(datetime.now(UTC) - due).total_seconds():.1f} s after they were due")
    return due, {str(job.delivery_id): path_of[n] for n, job in enumerate(jobs)}


def cpu_used(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each of the bench's processes (`pids`, with those below them), PostgreSQL's
    and Redis's."""
    now = processes_now()
    used = {label: cpu_seconds(pid, now) for label, pid in pids.items()}
    return {**used, "PostgreSQL": cpu_seconds_named("postgres", now), "Redis": cpu_seconds_named("redis-server", now)}


def run(sink: str, *, count: int, paths: int, parallelism: int | None, pids: dict[str, int]) -> dict:
    sink_reset(sink)
    due, path_of = schedule(sink, count=count, paths=paths, parallelism=parallelism)
    time.sleep(max(0.0, due.timestamp() - time.time()))
    used_before = cpu_used(pids)
    poll(jobs_done, timeout=max(180, count / 20), every=0.25)
    used = {label: seconds - used_before[label] for label, seconds in cpu_used(pids).items()}
    hits, most = sink_stats(sink)
    first_hit: dict[str, float] = {}
    for delivery, _, received in hits:
        if delivery in path_of:
            first_hit.setdefault(delivery, received)
    first, last = min(first_hit.values()), max(first_hit.values())
    path_done: dict[int, float] = {}
    for delivery, received in first_hit.items():
        path_done[path_of[delivery]] = max(path_done.get(path_of[delivery], 0.0), received)
    done = sorted(path_done.values())
    return {
        "queued": parallelism is not None,
        "jobs": count,
        "received": len(first_hit),
        "lost": count - len(first_hit),
        "duplicates": sum(1 for delivery, _, _ in hits if delivery in path_of) - len(first_hit),
        "from_due": len(first_hit) / (last - due.timestamp()),
        "first_to_last": len(first_hit) / (last - first) if last > first else None,
        "most_in_flight": max(most.values(), default=0),
        # When the first, the median and the last path had all their jobs, in seconds after the due time.
        "paths_done": [done[round(q * (len(done) - 1))] - due.timestamp() for q in (0, 0.5, 1)],
        # CPU microseconds per job from the due time until every job was recorded, by process (the bench's own
        # polling of the database counted in PostgreSQL's).
        "cpu_us": {label: 1e6 * seconds / count for label, seconds in used.items()},
    }


def fmt(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def cpu_of(result: dict, label: str) -> float:
    return sum(result["cpu_us"].values()) if label == "all" else result["cpu_us"][label]


def table(results: list[dict], args, load: tuple[float, float]) -> str:
    plain = [r for r in results if not r["queued"]]
    queued = [r for r in results if r["queued"]]
    plain_rate = statistics.median(r["from_due"] for r in plain)
    queued_rate = statistics.median(r["from_due"] for r in queued)
    most = max(r["most_in_flight"] for r in queued)
    lines = [
        f"# Jobs queues benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}. "
        f"Loopback only. Workers: Celery prefork x {WORKER_CONCURRENCY}; one dispatcher (`dispatchjobs`); "
        "PostgreSQL and Redis on the same cores. "
        f"Load average (1 min) at the start / end of the run: {load[0]:.1f} / {load[1]:.1f}.",
        f"Each round: {args.jobs:,} jobs due in the same second to {args.queues} sink paths, an equal share each "
        f"(each answers after {args.delay_ms:g} ms), first without queues, then each path's jobs in a queue "
        f"of its own with parallelism {args.parallelism}. Before the rounds, {WARM_UP} jobs go through the workers.",
        "",
        "| round | queues | delivered, due time to last (jobs/s) | first to last (jobs/s) "
        "| paths done, s after due (first / median / last) | most held at once by one path | lost / duplicates |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, result in enumerate(results):
        lines.append(
            f"| {index // 2 + 1} | {f'{args.queues} x parallelism {args.parallelism}' if result['queued'] else 'none'} "
            f"| {fmt(result['from_due'])} | {fmt(result['first_to_last'])} "
            f"| {' / '.join(f'{seconds:.2f}' for seconds in result['paths_done'])} | {result['most_in_flight']} "
            f"| {result['lost']} / {result['duplicates']} |"
        )
    lines += [
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| queued / unqueued throughput (medians, due time to last) | {queued_rate / plain_rate:.2f} "
        f"({fmt(queued_rate)} / {fmt(plain_rate)} jobs/s) | >= {RATIO_GOAL} |",
        f"| most requests one queue's path held at once | {most} | <= {args.parallelism} |",
        "",
        "CPU per job, from the due time until every job was recorded (medians of the rounds, microseconds; "
        "a measure the machine's other load moves less than throughput):",
        "",
        "| process | unqueued | queued | queued - unqueued |",
        "|---|---|---|---|",
    ]
    for label in [*plain[0]["cpu_us"], "all"]:
        cost = [statistics.median(cpu_of(r, label) for r in kind) for kind in (plain, queued)]
        lines.append(f"| {label} | {cost[0]:.0f} | {cost[1]:.0f} | {cost[1] - cost[0]:+.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=100)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delay-ms", type=float, default=5, help="how long each path holds a request")
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    prepare()
    from config.celery import app as celery_app

    processes = Processes(env={**os.environ, **ENVIRONMENT}, log_dir=LOGS)
    port = free_port()
    sink = f"http://127.0.0.1:{port}"
    results = []
    try:
        sink_command = [PYTHON, str(ROOT / "bench" / "jobs_sink.py"), "--port", str(port)]
        sink_process = processes.start("sink", [*sink_command, "--queue-delay-ms", str(args.delay_ms)])
        wait_for_port(port, what="the sink to listen (see var/bench-jobs-queues/sink.log)")
        dispatcher = processes.start("dispatcher", [PYTHON, "manage.py", "dispatchjobs"])
        hostname = f"--hostname=bench-queues-{uuid.uuid4().hex[:6]}@%h"
        worker = processes.start("worker", celery_worker(f"--concurrency={WORKER_CONCURRENCY}", hostname))
        wait_for_workers(celery_app, 1)
        pids = {"workers": worker.pid, "dispatcher": dispatcher.pid, "sink": sink_process.pid}
        run(sink, count=WARM_UP, paths=args.queues, parallelism=None, pids=pids)
        for _ in range(args.rounds):
            for parallelism in (None, args.parallelism):
                results.append(run(sink, count=args.jobs, paths=args.queues, parallelism=parallelism, pids=pids))
                print(results[-1], flush=True)
    finally:
        processes.stop_all(grace=30)

    text = table(results, args, (load_at_start, os.getloadavg()[0]))
    write_results("jobs-queues", text)


if __name__ == "__main__":
    main()
