# ruff: noqa: S608 - the generated SQL holds the bench's own numbers only
"""How fast `manage.py import_upstream` adopts a national programme's store, and in how much memory.

Generates an upstream-shaped database (harness/upstream.py) with SUBSCRIPTIONS
subscriptions and MESSAGES messages (plus their send failures, resend requests, behind
subscriptions and estimates), imports it into a fresh, migrated database of this
service, then imports it again (the idempotent second run that an operator makes at
cut-over). Goal (issue 19): 1,000,000 subscriptions and 10,000 messages in under 5
minutes. The import runs as its own process: its peak memory is the child's maxrss.

    python bench/upstream_import.py [--subscriptions 1000000] [--messages 10000] [--batch 5000]
"""

import argparse
import os
import re
import resource
import subprocess
import time

from common import PYTHON, ROOT, fresh_database, heading, service_environment, write_results

from harness.upstream import create_upstream_database

SOURCE = "bench_upstream_source"
TARGET = "bench_upstream"
GOAL_SECONDS = 300
SETS = 20
LANGS = ("eng", "zul")


def fill_upstream(url: str, *, subscriptions: int, messages: int) -> None:
    """The upstream's records, made by PostgreSQL itself (generate_series), in a few statements."""
    import psycopg

    per_set = max(1, messages // (SETS * len(LANGS)))
    with psycopg.connect(url) as connection:
        execute = connection.execute
        execute(
            "INSERT INTO auth_user (id, password, is_superuser, username, email, is_staff, is_active) "
            "VALUES (1, '!', false, 'hub', 'hub@example.org', false, true)"
        )
        execute("INSERT INTO authtoken_token (key, user_id) VALUES (repeat('ab', 20), 1)")
        execute(
            "INSERT INTO contentstore_schedule (id, minute, hour, day_of_week) SELECT n, '0', '8', '1, 3' "
            "FROM generate_series(1, 10) n"
        )
        execute(
            "INSERT INTO contentstore_messageset (id, short_name, label, default_schedule_id, next_set_id) "
            f"SELECT n, 'set_' || n, 'Set ' || n, 1 + n % 10, NULLIF(n + 1, {SETS + 1}) "
            f"FROM generate_series(1, {SETS}) n"
        )
        execute(
            "INSERT INTO contentstore_message (messageset_id, sequence_number, lang, text_content, metadata) "
            "SELECT s, q, l, 'Message ' || q || ' of set ' || s || ' in ' || l, '{\"week\": 1}' "
            f"FROM generate_series(1, {SETS}) s, generate_series(1, {per_set}) q, "
            f"unnest(ARRAY{list(LANGS)}) l"
        )
        execute(
            "INSERT INTO subscriptions_subscription (id, identity, messageset_id, next_sequence_number, lang, "
            "active, completed, schedule_id, process_status, metadata, created_by_id) "
            f"SELECT gen_random_uuid(), gen_random_uuid()::text, 1 + n % {SETS}, 1 + n % {per_set}, "
            "CASE WHEN n % 3 = 0 THEN 'zul' ELSE 'eng' END, n % 10 <> 0, n % 10 = 0, 1 + n % 10, "
            "CASE WHEN n % 10 = 0 THEN 2 ELSE 0 END, jsonb_build_object('source', 'clinic', 'n', n), 1 "
            f"FROM generate_series(1, {subscriptions}) n"
        )
        sample = max(1, subscriptions // 1000)
        execute(
            "INSERT INTO subscriptions_subscriptionsendfailure (subscription_id, task_id, initiated_at, reason) "
            f"SELECT id, gen_random_uuid(), now(), 'timeout' FROM subscriptions_subscription LIMIT {sample}"
        )
        execute(
            "INSERT INTO subscriptions_resendrequest (subscription_id, outbound) "
            f"SELECT id, gen_random_uuid() FROM subscriptions_subscription LIMIT {sample}"
        )
        execute(
            "INSERT INTO subscriptions_behindsubscription (subscription_id, messages_behind, current_messageset_id, "
            "current_sequence_number, expected_messageset_id, expected_sequence_number) "
            f"SELECT id, 2, messageset_id, 1, messageset_id, 3 FROM subscriptions_subscription LIMIT {sample}"
        )
        execute(
            "INSERT INTO subscriptions_estimatedsend (send_date, messageset_id, estimate_subscriptions, "
            f"estimate_identities) SELECT current_date - d, s, 100, 90 FROM generate_series(0, 29) d, "
            f"generate_series(1, {SETS}) s"
        )
        execute("ANALYZE")


def import_once(environment: dict[str, str], url: str, batch: int) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(
        [PYTHON, "manage.py", "import_upstream", "--from", url, "--batch-size", str(batch)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.monotonic() - started, result.stdout


def table_rows(output: str) -> dict[str, list[str]]:
    """The import report's table: name -> [read, written, skipped, seconds, rows/s]."""
    line = re.compile(r"^(auth_user|authtoken_token|contentstore_\w+|subscriptions_\w+) +([\d., ]+)$", re.MULTILINE)
    return {match[1]: match[2].split() for match in line.finditer(output)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=5000)
    args = parser.parse_args()

    url = create_upstream_database(SOURCE)
    started = time.monotonic()
    fill_upstream(url, subscriptions=args.subscriptions, messages=args.messages)
    generated = time.monotonic() - started
    environment = service_environment(
        database=TARGET, redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/4")
    )
    fresh_database(TARGET)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=environment, check=True)

    first, output = import_once(environment, url, args.batch)
    second, again = import_once(environment, url, args.batch)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows, rerun = table_rows(output), table_rows(again)

    lines = heading(
        "Importing an upstream store (bench/upstream_import.py)",
        f"; upstream generated in {generated:.0f} s; batches of {args.batch}; import and database on the same cores",
    )
    lines += [
        "",
        "| table | rows | written | seconds | rows/s | second run: written | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (read, written, _skipped, seconds, rate) in rows.items():
        again_row = rerun.get(name, ["", "", "", "", ""])
        lines.append(f"| {name} | {read} | {written} | {seconds} | {rate} | {again_row[1]} | {again_row[3]} |")
    met = "yes" if first < GOAL_SECONDS else "no"
    lines += [
        "",
        f"Whole import of {args.subscriptions:,} subscriptions and {args.messages:,} messages: {first:.1f} s "
        f"(goal < {GOAL_SECONDS} s: {met}); second run (writes nothing): {second:.1f} s; "
        f"peak memory of an import process: {peak:.0f} MB.",
    ]
    write_results("upstream-import", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
