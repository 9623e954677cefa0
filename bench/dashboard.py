"""Benchmark of the operations dashboard: its page rendered over a million subscriptions and a million jobs.

    .venv/bin/python bench/dashboard.py [--subscriptions 1000000] [--jobs 1000000] [--renders 20]

Uses a database of its own (`dashboard_bench`, made afresh) and no other process: the page is
rendered in this process by Django's test client, logged in as a staff member, as the admin
serves it (middleware, admin context, template, every chart's queries and SVG).

- fill, by `INSERT ... SELECT generate_series` in the database: --subscriptions subscriptions over
  10 message sets on daily, weekdays and weekly schedules (90% ready, the rest completed or
  inactive); 30 days of schedule sends' batches (SEND_BATCH_SIZE subscriptions each); 10,000
  send failures and 10,000 behind subscriptions; --jobs jobs (10% scheduled, 1% retrying,
  0.1% running, 5% dead, the rest succeeded, finished evenly over 30 days), one attempt for
  each job that was sent (two for the dead), so about 1,250 in the last hour;
- render: the page --renders times (the first one apart, in a process that has served one admin page), and each chart's
  builder alone as many times (the two charts of the last hour's attempts share one): min / median / max.

The table is printed and written to bench/results/dashboard-<date>.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from common import PYTHON, ROOT, fresh_database, heading, write_results

DATABASE = "dashboard_bench"
DATABASE_SERVER = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "false",
    "SECRET_KEY": "bench-only-" + "x" * 40,
    "JOBS_SIGNING_KEY": "bench-only-signing-key",
    "DATABASE_URL": f"{DATABASE_SERVER}/{DATABASE}",
    # The page reads nothing from Redis; a database of its own all the same.
    "REDIS_URL": os.environ.get("BENCH_DASHBOARD_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "LOG_LEVEL": "WARNING",
}
GOAL_SECONDS = 1.0
SETS = 10
CRONS = (("0", "8", "*"), ("0", "9", "1-5"), ("30", "7", "1"))  # minute, hour, day of week

FILL_SUBSCRIPTIONS = """
INSERT INTO subscriptions_subscription (id, identity, version, messageset_id, initial_sequence_number,
    next_sequence_number, lang, active, completed, schedule_id, process_status, metadata, created_at, updated_at)
SELECT gen_random_uuid(), gen_random_uuid()::text, 1, sets.ids[1 + n %% %(sets)s], 1, 1 + n %% 20, 'eng',
    n %% 20 <> 1, n %% 20 = 0, schedules.ids[1 + n %% %(sets)s], CASE WHEN n %% 20 = 0 THEN 2 ELSE 0 END, NULL,
    now() - (n %% 400) * interval '1 day', now()
FROM generate_series(1, %(count)s) AS n,
    (SELECT array_agg(id ORDER BY id) AS ids FROM contentstore_messageset) AS sets,
    (SELECT array_agg(default_schedule_id ORDER BY id) AS ids FROM contentstore_messageset) AS schedules
"""
FILL_RUNS = """
INSERT INTO subscriptions_sendrun (id, schedule_id, period_start, started_at, walked_at, finished_at, abandoned)
SELECT gen_random_uuid(), schedule.id, day, day, day, day + interval '5 minutes', false
FROM contentstore_schedule AS schedule, generate_series(date_trunc('day', now()) - interval '29 days',
    date_trunc('day', now()), interval '1 day') AS day
"""
FILL_BATCHES = """
INSERT INTO subscriptions_sendbatch (run_id, size, queued_at, done_at, sent, failed, skipped)
SELECT run.id, %(size)s, run.started_at, run.started_at + n * interval '1 second', %(size)s - 3, 2, 1
FROM subscriptions_sendrun AS run, generate_series(1, %(batches)s) AS n
"""
FILL_FAILURES = """
INSERT INTO subscriptions_subscriptionsendfailure (subscription_id, task_id, initiated_at, reason, sequence_number)
SELECT id, gen_random_uuid(), now(), (ARRAY['Missing message: MessageSet: <set>, Sequence Number: <9>, Lang: <eng>',
    'Message sender answered HTTP 503: busy (after 3 attempts)', 'Message sender: OutboundTimeout: timed out',
    'Message sender answered HTTP 400: bad number'])[1 + row_number %% 4], 2
FROM (SELECT id, row_number() OVER () FROM subscriptions_subscription LIMIT 10000) AS chosen
"""
FILL_BEHIND = """
INSERT INTO subscriptions_behindsubscription (subscription_id, messages_behind, current_messageset_id,
    current_sequence_number, expected_messageset_id, expected_sequence_number, created_at)
SELECT id, 2, messageset_id, next_sequence_number, messageset_id, next_sequence_number + 2, now()
FROM subscriptions_subscription WHERE process_status = 0 LIMIT 10000
"""
FILL_JOBS = """
INSERT INTO jobs_job (id, user_id, kind, method, uri, at, headers, body, timeout, callback_uri, failure_callback_uri,
    state, next_attempt_at, first_attempt_at, attempt_count, attempt_started_at, delivery_id, keyring,
    deduplication_id, finished_at, cron, time_zone, paused, created_at, updated_at)
SELECT gen_random_uuid(), %(user)s, 'request', 'POST', 'http://127.0.0.1:9/filled', due, '{}', '', 5, '', '',
    state, CASE WHEN state IN ('scheduled', 'running') THEN due END, CASE WHEN state <> 'scheduled' THEN due END,
    CASE WHEN state = 'failed' THEN 2 WHEN n %% 1000 BETWEEN 100 AND 109 OR state <> 'scheduled' THEN 1 ELSE 0 END,
    CASE WHEN state = 'running' THEN due END, gen_random_uuid(), '', '',
    CASE WHEN state IN ('succeeded', 'failed') THEN due END, '', '', false, due, due
FROM (
    SELECT n, CASE WHEN n %% 1000 < 110 THEN 'scheduled' WHEN n %% 1000 = 110 THEN 'running'
        WHEN n %% 1000 BETWEEN 111 AND 160 THEN 'failed' ELSE 'succeeded' END AS state,
        CASE WHEN n %% 1000 < 110 THEN now() + (n %% 86400) * interval '1 second'
        ELSE now() - (n %% 2592000) * interval '1 second' END AS due
    FROM generate_series(1, %(count)s) AS n
) AS filled
"""
FILL_ATTEMPTS = """
INSERT INTO jobs_attempt (job_id, number, outcome, started_at, duration_ms, status_code, http_version,
    response_headers, body_excerpt, error)
SELECT job.id, number, CASE WHEN job.state = 'failed' THEN 'failed' ELSE 'succeeded' END,
    job.at + number * interval '40 milliseconds', 3.5, CASE WHEN job.state = 'failed' THEN 503 ELSE 200 END,
    'HTTP/1.1', '[["Content-Type", "text/plain"]]', 'ok', ''
FROM jobs_job AS job, generate_series(1, 2) AS number
WHERE job.state IN ('succeeded', 'failed', 'running') AND (number = 1 OR job.state = 'failed')
"""


def prepare() -> None:
    fresh_database(DATABASE, DATABASE_SERVER)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env={**os.environ, **ENVIRONMENT}, check=True
    )


def fill(subscriptions: int, jobs: int) -> dict:
    from django.conf import settings
    from django.db import connection

    from accounts.models import User
    from contentstore import services

    user = User.objects.create_user(username="bench@example.org", is_staff=True)  # logged in by force_login
    for number in range(SETS):
        minute, hour, day_of_week = CRONS[number % len(CRONS)]
        schedule = services.schedule_create(minute=minute, hour=hour, day_of_week=day_of_week)
        services.messageset_create(short_name=f"set-{number:02d}", default_schedule=schedule)
    started = time.monotonic()
    batches = max(1, subscriptions // SETS // settings.SEND_BATCH_SIZE)
    with connection.cursor() as cursor:
        cursor.execute(FILL_SUBSCRIPTIONS, {"sets": SETS, "count": subscriptions})
        cursor.execute(FILL_RUNS)
        cursor.execute(FILL_BATCHES, {"size": settings.SEND_BATCH_SIZE, "batches": batches})
        cursor.execute(FILL_FAILURES, {})
        cursor.execute(FILL_BEHIND)
        cursor.execute(FILL_JOBS, {"user": user.pk, "count": jobs})
        cursor.execute(FILL_ATTEMPTS)
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("SELECT count(*) FROM jobs_attempt")
        attempts = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM subscriptions_sendbatch")
        send_batches = cursor.fetchone()[0]
    return {
        "subscriptions": subscriptions,
        "jobs": jobs,
        "attempts": attempts,
        "batches": send_batches,
        "seconds": time.monotonic() - started,
        "user": user,
    }


def timed(action, times: int) -> dict:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return {"min": min(seconds), "median": statistics.median(seconds), "max": max(seconds)}


def measure(user, renders: int) -> tuple[float, dict, dict]:
    from django.test import Client

    from dashboard import selectors
    from jobs import clock

    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def render() -> None:
        # The charts drawn: those of every section (the cache's and topics' only once their faces served
        # requests within the hour, which depends on what else used this Redis lately).
        expected = sum(len(section.charts) for section in selectors.dashboard_sections(now=clock.now()))
        response = client.get("/admin/dashboard/")
        drawn = response.content.count(b'class="chart"')
        if response.status_code != 200 or drawn != expected or expected < 6:
            raise SystemExit(f"The dashboard did not render its charts: {response.status_code}, {drawn} of {expected}")

    client.get("/admin/")  # the process's own first-request costs (imports, templates) paid apart
    started = time.perf_counter()
    render()
    first = time.perf_counter() - started
    page = timed(render, renders)
    slugs: dict = {}  # builder -> the charts it makes
    for slug, build in {**selectors.MESSAGING, **selectors.JOBS}.items():
        slugs.setdefault(build, []).append(slug)
    charts = {
        " and ".join(made): timed(lambda build=build: build(now=clock.now()), renders) for build, made in slugs.items()
    }
    return first, page, charts


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def table(args, filled: dict, first: float, page: dict, charts: dict) -> str:
    lines = heading(
        "# Operations dashboard benchmark",
        ". PostgreSQL on the same cores; the page rendered in-process by Django's test client.",
    )
    met = "yes" if page["median"] < GOAL_SECONDS and page["max"] < GOAL_SECONDS else "no"
    lines += [
        "",
        f"Filled {filled['subscriptions']:,} subscriptions, {filled['batches']:,} send batches, "
        f"{filled['jobs']:,} jobs and {filled['attempts']:,} attempts in {filled['seconds']:.1f} s "
        "(`INSERT ... SELECT`, then `VACUUM ANALYZE`).",
        "",
        "| measure | min / median / max (ms) |",
        "|---|---|",
        f"| page, first render (after one admin page: the process's start-up apart) | {ms(first)} |",
        f"| page, {args.renders} renders (goal: under {GOAL_SECONDS:g} s; met: {met}) "
        f"| {ms(page['min'])} / {ms(page['median'])} / {ms(page['max'])} |",
    ]
    lines += [
        f"| chart {names} alone | {ms(figures['min'])} / {ms(figures['median'])} / {ms(figures['max'])} |"
        for names, figures in charts.items()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--renders", type=int, default=20, help="renders of the page (after a first, cold one)")
    args = parser.parse_args()

    prepare()
    os.environ.update(ENVIRONMENT)
    import django

    django.setup()
    filled = fill(args.subscriptions, args.jobs)
    print(f"filled: { {key: value for key, value in filled.items() if key != 'user'} }", flush=True)
    first, page, charts = measure(filled["user"], args.renders)
    write_results("dashboard", table(args, filled, first, page, charts))


if __name__ == "__main__":
    main()
