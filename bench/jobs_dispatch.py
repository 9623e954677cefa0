"""Benchmark of delayed HTTP jobs: dispatch throughput, lateness, and a worker killed mid-run.

    .venv/bin/python bench/jobs_dispatch.py [--burst 10000] [--spread 2000] [--spread-seconds 120] [--kill 5000]
        [--baseline-seconds 5] [--baseline-connections 64]

Starts everything it needs on this machine and stops it again: a local sink
(`bench/jobs_sink.py`: uvloop and httptools, counting hits and duplicates), a dispatcher (`manage.py dispatchjobs`)
and Celery workers, against a database (`jobs_bench`) and a Redis database (12)
of its own. Traffic goes to 127.0.0.1 only. Needs wrk (`apt-get install wrk`).

- baseline: the sink's own capacity, the ceiling of any client: wrk (2 threads) keeps
  --baseline-connections connections alive and busy for --baseline-seconds with the request a job
  sends (POST, a small JSON body, the job headers) plus `X-Baseline: 1`, which the sink answers the
  same way but does not record as a hit;
- (a) N jobs all due in the same second: delivered jobs/s, from the first to the last delivery at
  the sink and from the due time to the last delivery, and lateness (sink receipt - `at`);
- (b) M jobs spread evenly over S seconds: lateness;
- (c) K jobs due at once, to a target that answers after 50 ms, with two workers; one is killed
  (SIGKILL, with its pool) mid-run: lost jobs, duplicates, and the attempts recorded as lost
  that explain them.

Every throughput is given with its ratio to the sink's capacity. Goals: (a) >= 5,000 jobs/s;
(b) lateness p99 <= 100 ms; (c) 0 lost.

The lease is 30 s (so that (c) ends soon) and JOBS_MAX_IN_FLIGHT 10,000, well within what the workers send in it.

The table is printed and written to bench/results/jobs-<date>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
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
    find_wrk,
    fresh_database,
    ratio,
    sink_capacity,
    wait_for_workers,
    write_results,
)

from harness.processes import Processes
from harness.waiting import free_port, poll, wait_for_port

LOGS = ROOT / "var" / "bench-jobs"  # each process's output
DATABASE = os.environ.get("BENCH_JOBS_DATABASE", "jobs_bench")
DATABASE_SERVER = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
WORKER_CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "2"))
CHUNK = int(os.environ.get("JOBS_DELIVERY_CHUNK", "100"))  # the service's default
LEASE_SECONDS = 30
BURST_GOAL = 5_000  # jobs/s
SPREAD_P99_GOAL = 100  # ms
# The settings every process of the run shares.
ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(40),
    "JOBS_SIGNING_KEY": secrets.token_urlsafe(32),
    "DATABASE_URL": f"{DATABASE_SERVER}/{DATABASE}",
    "REDIS_URL": REDIS_URL,
    "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
    "JOBS_MAX_TIMEOUT": "5",
    "JOBS_DEFAULT_TIMEOUT": "5",
    "JOBS_LEASE_SECONDS": str(LEASE_SECONDS),
    # Claimed-but-unrecorded jobs stay below what the workers send within the (short) lease.
    "JOBS_MAX_IN_FLIGHT": "10000",
    "LOG_LEVEL": "WARNING",
}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def prepare_storage() -> None:
    import redis

    fresh_database(DATABASE, DATABASE_SERVER)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env={**os.environ, **ENVIRONMENT}, check=True
    )
    redis.Redis.from_url(REDIS_URL).flushdb()


def setup_django():
    os.environ.update(ENVIRONMENT)
    import django

    django.setup()


def sink_hits(sink: str) -> list[tuple[str, str, float]]:
    with urlopen(f"{sink}/_stats", timeout=60) as response:  # noqa: S310 - the local sink
        return [tuple(hit) for hit in json.load(response)["hits"]]


def sink_reset(sink: str) -> None:
    with urlopen(f"{sink}/_reset", data=b"", timeout=60):  # noqa: S310 - the local sink
        pass


def baseline(sink: str, *, seconds: int, connections: int) -> dict:
    """The sink's own capacity for the request a job sends (wrk, kept-alive connections), not recorded as hits."""
    delivery = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "Job-Delivery-Id": delivery,
        "Job-Attempt": "1",
        "webhook-id": f"msg_{delivery.replace('-', '')}",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1," + "A" * 43 + "=",
        "X-Baseline": "1",
    }
    rate = sink_capacity(f"{sink}/burst", body=b"{}", headers=headers, seconds=seconds, connections=connections)
    return {"rate": rate, "connections": connections, "seconds": seconds}


def schedule_jobs(sink: str, times: list[datetime], name: str):
    from accounts.models import User
    from jobs.models import Attempt, Job

    Attempt.objects.all().delete()
    Job.objects.all().delete()
    user, _ = User.objects.get_or_create(username="bench@example.org", defaults={"email": "bench@example.org"})
    jobs = [
        Job(user=user, uri=f"{sink}/{name}", method="POST", at=at, next_attempt_at=at, timeout=5, body="{}")
        for at in times
    ]
    Job.objects.bulk_create(jobs, batch_size=2000)
    stored = datetime.now(UTC)
    if stored > min(times):
        print(f"Warning: the {name} jobs were stored {(stored - min(times)).total_seconds():.1f} s after they were due")
    return {str(job.delivery_id): job.at for job in jobs}


def jobs_done() -> bool:
    from jobs.models import Job, JobState

    return not Job.objects.exclude(state=JobState.SUCCEEDED).exists()


def lateness_report(sink: str, at_by_delivery: dict[str, datetime]) -> dict:
    hits = [hit for hit in sink_hits(sink) if hit[0] in at_by_delivery]
    first_hit: dict[str, float] = {}
    for delivery, _, received in hits:
        first_hit.setdefault(delivery, received)
    late = [(first_hit[d] - at_by_delivery[d].timestamp()) * 1000 for d in first_hit]
    earliest_due = min(at.timestamp() for at in at_by_delivery.values())
    first = min(first_hit.values()) if first_hit else earliest_due
    last = max(first_hit.values()) if first_hit else earliest_due
    return {
        "jobs": len(at_by_delivery),
        "received": len(first_hit),
        "lost": len(at_by_delivery) - len(first_hit),
        "duplicates": len(hits) - len(first_hit),
        "p50": percentile(late, 0.50) if late else None,
        "p99": percentile(late, 0.99) if late else None,
        "max": max(late) if late else None,
        "min": min(late) if late else None,
        "span": last - earliest_due,
        "delivery_span": last - first,
    }


WARM_UP = 200  # jobs sent before the burst: each worker process's first connections are not in its figure


def warm_up(sink: str) -> None:
    """Send a few jobs through every process first, as a service that has been running would have."""
    schedule_jobs(sink, [datetime.now(UTC) + timedelta(seconds=1)] * WARM_UP, "warm-up")
    poll(jobs_done, timeout=120, every=0.2)
    sink_reset(sink)


def run_burst(sink: str, count: int) -> dict:
    warm_up(sink)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    at_by_delivery = schedule_jobs(sink, [due] * count, "burst")
    poll(jobs_done, timeout=max(120, count / 50), every=0.5)
    report = lateness_report(sink, at_by_delivery)
    # Delivered jobs/s: over the deliveries themselves (first to last at the sink), and counting the wait for
    # the first one (the due time to the last delivery).
    received, span, delivery_span = report["received"], report["span"], report["delivery_span"]
    report["throughput"] = received / delivery_span if delivery_span > 0 else None
    report["throughput_from_due"] = received / span if span > 0 else None
    return report


def run_spread(sink: str, count: int, seconds: float) -> dict:
    start = datetime.now(UTC) + timedelta(seconds=3)
    times = [start + timedelta(seconds=seconds * n / count) for n in range(count)]
    at_by_delivery = schedule_jobs(sink, times, "spread")
    poll(lambda: datetime.now(UTC) > times[-1], timeout=seconds + 10, every=0.5)
    poll(jobs_done, timeout=60, every=0.5)
    return lateness_report(sink, at_by_delivery)


def run_kill(sink: str, processes: Processes, count: int) -> dict:
    from config.celery import app as celery_app
    from jobs.models import Attempt, AttemptOutcome

    workers = [
        processes.start(f"kill-worker-{n}", celery_worker("--concurrency=1", f"--hostname=kill-{n}@%h"))
        for n in range(2)
    ]
    wait_for_workers(celery_app, 2)
    due = datetime.now(UTC) + timedelta(seconds=2)
    at_by_delivery = schedule_jobs(sink, [due] * count, "slow-kill")
    poll(lambda: len(sink_hits(sink)) >= count * 0.3, timeout=120, every=0.05)
    killed_at = len(sink_hits(sink))
    workers[0].kill()
    finished = poll(jobs_done, timeout=LEASE_SECONDS * 4 + 120, every=0.5)
    done_after = time.time() - due.timestamp()
    report = lateness_report(sink, at_by_delivery)
    hits = [hit for hit in sink_hits(sink) if hit[0] in at_by_delivery]
    seen: dict[str, int] = {}
    for delivery, _, _ in hits:
        seen[delivery] = seen.get(delivery, 0) + 1
    duplicated = {delivery for delivery, times in seen.items() if times > 1}
    lost_attempts = Attempt.objects.filter(outcome=AttemptOutcome.LOST)
    explained = {str(d) for d in lost_attempts.values_list("job__delivery_id", flat=True)}
    report.update(
        finished=finished,
        done_after=done_after,
        received_before_kill=killed_at,
        lost_attempts=lost_attempts.count(),
        duplicates_explained=len(duplicated & explained),
        duplicates_unexplained=len(duplicated - explained),
    )
    workers[1].stop(grace=30)
    return report


def fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table(base: dict, burst: dict | None, spread: dict | None, kill: dict | None, args, load: tuple) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    capacity = base["rate"]
    lines = [
        f"# Jobs benchmark, {now}",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}. "
        f"Loopback only. Workers: Celery prefork x {WORKER_CONCURRENCY}, chunks of {CHUNK} jobs handed to each "
        "process's outbound loop; one dispatcher (`dispatchjobs`: wakes when the next job is due, at most 100 ms "
        "apart; batches of 1,000); PostgreSQL and Redis on the same cores. "
        f"Load average (1 min) at the start / end of the run: {load[0]:.1f} / {load[1]:.1f}.",
        f"Baseline: wrk -t2 for {base['seconds']} s, `POST` with the body and headers of a job, to the sink alone "
        "(no database, no queue, no service code): the most any client could get from it here.",
        f"Before (a), {WARM_UP} jobs are sent through the workers, so that their first connections (database, "
        "sink) are made before the burst, as in a service that has been running.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| sink capacity (wrk, {base['connections']} connections, kept alive) | {fmt(capacity)} requests/s | |",
    ]
    if burst:
        lines += [
            f"| (a) {burst['jobs']:,} jobs due in the same second: delivered, first to last delivery "
            f"({fmt(burst['delivery_span'], 2)} s) | {fmt(burst['throughput'])} jobs/s "
            f"({ratio(burst['throughput'], capacity)}) | >= {BURST_GOAL:,} jobs/s |",
            f"| (a) delivered, due time to last delivery ({fmt(burst['span'], 2)} s) "
            f"| {fmt(burst['throughput_from_due'])} jobs/s ({ratio(burst['throughput_from_due'], capacity)}) "
            f"| >= {BURST_GOAL:,} jobs/s |",
            f"| (a) lateness p50 / p99 / max | {fmt(burst['p50'])} / {fmt(burst['p99'])} / {fmt(burst['max'])} ms | |",
            f"| (a) lost / duplicates | {burst['lost']} / {burst['duplicates']} | |",
            f"| (a) CPU per job: workers (all processes) / dispatcher | {fmt(burst['worker_cpu_ms'], 3)} / "
            f"{fmt(burst['dispatcher_cpu_ms'], 3)} ms | |",
        ]
    if spread:
        lines += [
            f"| (b) {spread['jobs']:,} jobs over {args.spread_seconds:g} s: lateness p50 / p99 / max "
            f"| {fmt(spread['p50'])} / {fmt(spread['p99'])} / {fmt(spread['max'])} ms | p99 <= {SPREAD_P99_GOAL} ms |",
            f"| (b) lost / duplicates | {spread['lost']} / {spread['duplicates']} | |",
        ]
    if kill:
        lines += [
            f"| (c) {kill['jobs']:,} jobs to a 50 ms target, 2 workers, one SIGKILLed after "
            f"{kill['received_before_kill']:,} hits: lost "
            f"| {kill['lost']} | 0 |",
            f"| (c) duplicates (sent twice) | {kill['duplicates']} ({kill['duplicates_explained']} explained by an "
            f"attempt recorded as lost, {kill['duplicates_unexplained']} unexplained) | |",
            f"| (c) attempts recorded as lost (in flight or queued on the killed worker) | {kill['lost_attempts']} | |",
            f"| (c) every job succeeded, within | {fmt(kill['done_after'], 1)} s of `at` "
            f"(the killed worker's jobs waited for their lease, {LEASE_SECONDS} s) | |",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--spread", type=int, default=2_000)
    parser.add_argument("--spread-seconds", type=float, default=120)
    parser.add_argument("--kill", type=int, default=5_000)
    parser.add_argument("--baseline-seconds", type=int, default=5, help="how long wrk loads the sink")
    parser.add_argument("--baseline-connections", type=int, default=64, help="wrk's kept-alive connections")
    args = parser.parse_args()
    find_wrk()

    load_at_start = os.getloadavg()[0]
    prepare_storage()
    setup_django()
    from config.celery import app as celery_app

    processes = Processes(env={**os.environ, **ENVIRONMENT}, log_dir=LOGS)
    port = free_port()
    sink = f"http://127.0.0.1:{port}"
    try:
        processes.start(
            "sink",
            [PYTHON, str(ROOT / "bench" / "jobs_sink.py"), "--port", str(port)],
        )  # fmt: skip
        wait_for_port(port, what="the sink to listen (see var/bench-jobs/sink.log)")
        base = baseline(sink, seconds=args.baseline_seconds, connections=args.baseline_connections)
        print(f"baseline: sink capacity {base['rate']:.0f} requests/s", flush=True)

        dispatcher = processes.start("dispatcher", [PYTHON, "manage.py", "dispatchjobs"])
        burst = spread = kill = None
        if args.burst or args.spread:
            worker = processes.start(
                "worker",
                celery_worker(f"--concurrency={WORKER_CONCURRENCY}", f"--hostname=bench-{uuid.uuid4().hex[:6]}@%h"),
            )
            wait_for_workers(celery_app, 1)
            if args.burst:
                sink_reset(sink)
                used_before = cpu_seconds(worker.pid), cpu_seconds(dispatcher.pid)
                burst = run_burst(sink, args.burst)
                used = cpu_seconds(worker.pid) - used_before[0], cpu_seconds(dispatcher.pid) - used_before[1]
                # What the service's own processes spent per job sent (the warm-up's jobs counted too).
                sent = args.burst + WARM_UP
                burst["worker_cpu_ms"], burst["dispatcher_cpu_ms"] = (1000 * seconds / sent for seconds in used)
                print(f"(a) {burst}", flush=True)
            if args.spread:
                sink_reset(sink)
                spread = run_spread(sink, args.spread, args.spread_seconds)
                print(f"(b) {spread}", flush=True)
            worker.stop(grace=30)
        if args.kill:
            sink_reset(sink)
            kill = run_kill(sink, processes, args.kill)
            print(f"(c) {kill}", flush=True)
    finally:
        processes.stop_all(grace=30)

    text = table(base, burst, spread, kill, args, (load_at_start, os.getloadavg()[0]))
    write_results("jobs", text)


if __name__ == "__main__":
    main()
