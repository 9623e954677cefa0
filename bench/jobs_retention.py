"""Benchmark of retention: pruning a large backlog of finished jobs while due jobs keep being sent.

    .venv/bin/python bench/jobs_retention.py [--jobs 1000000] [--attempts 2] [--batch 1000] [--rate 20]
        [--baseline-seconds 30] [--orm-sample 20000]

Starts everything it needs on this machine and stops it again: the jobs bench's local sink
(`bench/jobs_sink.py`), a dispatcher (`manage.py dispatchjobs`) and a Celery worker, against a
database (`jobs_retention_bench`) and a Redis database of its own (13, or BENCH_RETENTION_REDIS_URL; the run stops
at once if another client uses it). Traffic goes to 127.0.0.1 only.

- fill: --jobs finished jobs (80% succeeded 10 days ago, 20% failed 40 days ago: all past their
  retention), each with --attempts attempts, written by `INSERT ... SELECT` in the database;
- baseline: a stream of due jobs (--rate a second, each due 2 s after it is stored) delivered by the
  dispatcher and the worker to the sink for --baseline-seconds, nothing else running: lateness p50 / p99;
- cascade, for comparison: --orm-sample of the jobs deleted through Django's cascade
  (`Job.objects.filter(pk__in=batch).delete()`, --batch a transaction): rows/s;
- pruning: the rest deleted by the service (`jobs_prune`, --batch jobs a transaction, attempts first)
  while the same stream runs: rows/s, batches, the longest batch transaction (what it held its locks
  for), and the stream's lateness p50 / p99 for the jobs due while it ran.

The table is printed and written to bench/results/jobs-retention-<date>.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from common import PYTHON, ROOT, celery_worker, fresh_database, heading, wait_for_workers, write_results
from jobs_dispatch import ENVIRONMENT as DISPATCH_ENVIRONMENT
from jobs_dispatch import fmt, lateness_report, sink_reset

from harness.processes import Processes
from harness.waiting import free_port, poll, wait_for_port

LOGS = ROOT / "var" / "bench-jobs-retention"
DATABASE = "jobs_retention_bench"
DATABASE_SERVER = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
ENVIRONMENT = {
    **DISPATCH_ENVIRONMENT,
    "DATABASE_URL": f"{DATABASE_SERVER}/{DATABASE}",
    "REDIS_URL": os.environ.get("BENCH_RETENTION_REDIS_URL", "redis://127.0.0.1:6379/13"),
}
FILLED_URI = "http://127.0.0.1:9/filled"
LEAD = 2.0  # seconds between storing a stream job and its due time

FILL_JOBS = """
INSERT INTO jobs_job (id, user_id, kind, method, uri, at, headers, body, timeout, callback_uri, failure_callback_uri,
    state, first_attempt_at, attempt_count, delivery_id, keyring, deduplication_id, cron, time_zone, paused,
    finished_at, created_at, updated_at)
SELECT gen_random_uuid(), %(user)s, 'request', 'POST', %(uri)s, finished, '{}', '{}', 5, '', '',
    state, finished, %(attempts)s, gen_random_uuid(), '', '', '', '', false, finished, finished, finished
FROM (
    SELECT CASE WHEN n %% 5 = 0 THEN 'failed' ELSE 'succeeded' END AS state,
        now() - CASE WHEN n %% 5 = 0 THEN interval '40 days' ELSE interval '10 days' END
            - n * interval '1 millisecond' AS finished
    FROM generate_series(1, %(count)s) AS n
) AS filled
"""
FILL_ATTEMPTS = """
INSERT INTO jobs_attempt (job_id, number, outcome, started_at, duration_ms, status_code, http_version,
    response_headers, body_excerpt, error)
SELECT job.id, number, CASE WHEN job.state = 'failed' THEN 'failed' ELSE 'succeeded' END, job.finished_at, 3.5,
    CASE WHEN job.state = 'failed' THEN 503 ELSE 200 END, 'HTTP/1.1', '[["Content-Type", "text/plain"]]', 'ok', ''
FROM jobs_job AS job, generate_series(1, %(attempts)s) AS number
WHERE job.finished_at IS NOT NULL
"""


def prepare_storage() -> None:
    """A fresh database and Redis database, once no one else is seen using the Redis database."""
    import redis

    client = redis.Redis.from_url(ENVIRONMENT["REDIS_URL"])
    database = str(client.connection_pool.connection_kwargs.get("db", 0))
    me = client.client_id()
    others = [c for c in client.client_list() if c["db"] == database and int(c["id"]) != me]
    if others:  # a worker of theirs would take this run's delivery tasks, and its jobs would never be sent
        raise SystemExit(
            f"{len(others)} other client(s) use Redis database {database}: "
            "set BENCH_RETENTION_REDIS_URL to a database of this run's own."
        )
    client.flushdb()
    fresh_database(DATABASE, DATABASE_SERVER)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env={**os.environ, **ENVIRONMENT}, check=True
    )


def fill(count: int, attempts: int) -> dict:
    from django.db import connection

    from accounts.models import User

    user, _ = User.objects.get_or_create(username="bench@example.org", defaults={"email": "bench@example.org"})
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(FILL_JOBS, {"user": user.pk, "attempts": attempts, "count": count, "uri": FILLED_URI})
        cursor.execute(FILL_ATTEMPTS, {"attempts": attempts})
        cursor.execute("ANALYZE jobs_job")
        cursor.execute("ANALYZE jobs_attempt")
    return {"jobs": count, "attempts": count * attempts, "seconds": time.monotonic() - started}


class Stream:
    """Jobs due at `rate` a second, each stored LEAD seconds before it is due, until stopped."""

    def __init__(self, sink: str, rate: float):
        self.sink, self.rate = sink, rate
        self.at_by_delivery: dict[str, datetime] = {}
        self.stop = threading.Event()

    def run(self, seconds: float | None = None, until: threading.Event | None = None) -> None:
        from django.db import connection

        from accounts.models import User
        from jobs.models import Job

        user = User.objects.get(username="bench@example.org")
        start, stored = datetime.now(UTC), 0
        try:
            while not (until and until.is_set()):
                elapsed = (datetime.now(UTC) - start).total_seconds()
                if seconds is not None and elapsed >= seconds:
                    break
                due = int(elapsed * self.rate) + 1
                times = [start + timedelta(seconds=LEAD + n / self.rate) for n in range(stored, due)]
                jobs = [
                    Job(user=user, uri=f"{self.sink}/stream", method="POST", at=at, next_attempt_at=at, timeout=5)
                    for at in times
                ]
                Job.objects.bulk_create(jobs)
                self.at_by_delivery.update({str(job.delivery_id): job.at for job in jobs})
                stored = due
                time.sleep(0.1)
        finally:
            connection.close()

    def settled(self) -> None:
        """Wait until every stream job is done."""
        from jobs.models import Job, JobState

        poll(
            lambda: not Job.objects.filter(uri__endswith="/stream").exclude(state=JobState.SUCCEEDED).exists(),
            timeout=120,
            every=0.5,
        )


def cascade_sample(count: int, batch: int) -> dict:
    """Delete `count` of the filled jobs through Django's cascade, `batch` a transaction: rows/s."""
    from django.db import transaction

    from jobs.models import Attempt, Job

    attempts_before, deleted, batches, longest = Attempt.objects.count(), 0, 0, 0.0
    started = time.monotonic()
    while deleted < count:
        began = time.monotonic()
        with transaction.atomic():
            ids = list(
                Job.objects.filter(uri=FILLED_URI)
                .order_by()
                .values_list("pk", flat=True)[: min(batch, count - deleted)]
            )
            if not ids:
                break
            Job.objects.filter(pk__in=ids).delete()
        longest = max(longest, time.monotonic() - began)
        deleted, batches = deleted + len(ids), batches + 1
    seconds = time.monotonic() - started
    rows = deleted + attempts_before - Attempt.objects.count()
    return {"jobs": deleted, "rows": rows, "seconds": seconds, "batches": batches, "longest": longest}


def prune_during_stream(sink: str, rate: float, batch: int) -> tuple[dict, dict]:
    from django.db import connection

    from jobs import services

    stream, done = Stream(sink, rate), threading.Event()
    streaming = threading.Thread(target=stream.run, kwargs={"until": done})
    streaming.start()
    time.sleep(LEAD + 1)  # the stream reaches the sink before the pruning starts
    started_at = time.time()
    try:
        pruned = services.jobs_prune(limit=batch)
    finally:
        ended_at = time.time()
        done.set()
        streaming.join()
        connection.close()
    stream.settled()
    during = {d: at for d, at in stream.at_by_delivery.items() if started_at <= at.timestamp() <= ended_at}
    rows = sum(pruned.counts.values())
    seconds = ended_at - started_at
    result = {
        "jobs": pruned.counts["jobs"] + pruned.counts["dead"],
        "rows": rows,
        "seconds": seconds,
        "batches": pruned.batches,
        "longest": pruned.longest_batch,
    }
    return result, lateness_report(sink, during) if during else {}


def baseline(sink: str, rate: float, seconds: float) -> dict:
    stream = Stream(sink, rate)
    stream.run(seconds=seconds)
    stream.settled()
    return lateness_report(sink, stream.at_by_delivery)


def table(args, filled: dict, base: dict, cascade: dict | None, pruned: dict, during: dict) -> str:
    lines = heading(
        "# Jobs retention benchmark",
        ". Loopback only; one dispatcher, one Celery worker (prefork x 2), PostgreSQL and Redis on the same cores.",
    )
    lines += [
        "",
        f"Filled {filled['jobs']:,} finished jobs with {filled['attempts']:,} attempts in "
        f"{filled['seconds']:.1f} s (`INSERT ... SELECT`). Stream: {args.rate:g} jobs/s, each stored "
        f"{LEAD:g} s before it is due. Batches of {args.batch:,} jobs a transaction.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| baseline: stream alone for {args.baseline_seconds:g} s ({base.get('jobs', 0):,} jobs): lateness "
        f"p50 / p99 / max | {fmt(base.get('p50'))} / {fmt(base.get('p99'))} / {fmt(base.get('max'))} ms |",
    ]
    if cascade:
        lines.append(
            f"| Django's cascade, {cascade['jobs']:,} jobs ({cascade['rows']:,} rows with their attempts): "
            f"rows/s, longest batch | {fmt(cascade['rows'] / cascade['seconds'])} rows/s, "
            f"{fmt(cascade['longest'] * 1000)} ms |"
        )
    rate = pruned["rows"] / pruned["seconds"] if pruned["seconds"] else None
    lines += [
        f"| retention (`jobs_prune`, attempts first): {pruned['jobs']:,} jobs, {pruned['rows']:,} rows "
        f"| {fmt(pruned['seconds'], 1)} s, {fmt(rate)} rows/s, {fmt(pruned['jobs'] / pruned['seconds'])} jobs/s |",
        f"| retention: batches, longest batch transaction (locks held) | {pruned['batches']:,}, "
        f"{fmt(pruned['longest'] * 1000)} ms |",
        f"| stream during retention ({during.get('jobs', 0):,} jobs due while it ran): lateness p50 / p99 / max "
        f"| {fmt(during.get('p50'))} / {fmt(during.get('p99'))} / {fmt(during.get('max'))} ms |",
        f"| stream lost / duplicates (baseline; during retention) | {base.get('lost', 0)} / "
        f"{base.get('duplicates', 0)}; {during.get('lost', 0)} / {during.get('duplicates', 0)} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="finished jobs to fill and prune")
    parser.add_argument("--attempts", type=int, default=2, help="attempts of each filled job")
    parser.add_argument("--batch", type=int, default=1_000, help="jobs per transaction (JOBS_RETENTION_BATCH)")
    parser.add_argument("--rate", type=float, default=20, help="stream jobs due per second")
    parser.add_argument("--baseline-seconds", type=float, default=30)
    parser.add_argument("--orm-sample", type=int, default=20_000, help="jobs deleted by Django's cascade first")
    args = parser.parse_args()

    prepare_storage()
    os.environ.update(ENVIRONMENT)
    import django

    django.setup()
    from config.celery import app as celery_app

    processes = Processes(env={**os.environ, **ENVIRONMENT}, log_dir=LOGS)
    port = free_port()
    sink = f"http://127.0.0.1:{port}"
    try:
        processes.start("sink", [PYTHON, str(ROOT / "bench" / "jobs_sink.py"), "--port", str(port)])
        wait_for_port(port, what="the sink to listen (see var/bench-jobs-retention/sink.log)")
        filled = fill(args.jobs, args.attempts)
        print(f"filled: {filled}", flush=True)
        processes.start("dispatcher", [PYTHON, "manage.py", "dispatchjobs"])
        processes.start("worker", celery_worker("--concurrency=2", f"--hostname=retention-{uuid.uuid4().hex[:6]}@%h"))
        wait_for_workers(celery_app, 1)
        sink_reset(sink)
        base = baseline(sink, args.rate, args.baseline_seconds)
        print(f"baseline: {base}", flush=True)
        cascade = cascade_sample(min(args.orm_sample, args.jobs // 2), args.batch) if args.orm_sample else None
        print(f"cascade: {cascade}", flush=True)
        sink_reset(sink)
        pruned, during = prune_during_stream(sink, args.rate, args.batch)
        print(f"pruned: {pruned}; stream during: {during}", flush=True)
    finally:
        processes.stop_all(grace=30)

    write_results("jobs-retention", table(args, filled, base, cascade, pruned, during))


if __name__ == "__main__":
    main()
