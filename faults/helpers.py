"""Setting up and reading back what the scenarios work on, through the service's own API and database."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from .services import PrivatePostgres, Service

MAKE_SCHEDULE = """
from contentstore import services as content
from subscriptions.models import Subscription

schedule = content.schedule_create(minute="0", hour="8", day_of_month="1", month_of_year="1")
messageset = content.messageset_create(short_name={name!r}, default_schedule=schedule)
for number in (1, 2):
    content.message_create(
        messageset=messageset, sequence_number=number, lang="eng", text_content=f"Message {{number}}"
    )
Subscription.objects.bulk_create(
    Subscription(identity=f"{prefix}{{n:06d}}", messageset=messageset, schedule=schedule, lang="eng")
    for n in range({count})
)
print(schedule.pk)
"""


def make_schedule(service: Service, *, name: str, count: int, prefix: str) -> int:
    """A yearly schedule with a 2-message set and `count` ready subscriptions on it; the schedule's id."""
    output = service.django(MAKE_SCHEDULE.format(name=name, count=count, prefix=prefix))
    return int(output.strip().splitlines()[-1])


def fire(client: httpx.Client, schedule_id: int) -> None:
    response = client.post(f"/api/v1/schedule/{schedule_id}/send/")
    assert response.status_code == 202, response.text


def subscriptions_of(postgres: PrivatePostgres, schedule_id: int) -> dict[str, int]:
    """Subscription id -> next sequence number, for the subscriptions on the schedule."""
    with postgres.connect("faults") as connection:
        rows = connection.execute(
            "SELECT id::text, next_sequence_number FROM subscriptions_subscription WHERE schedule_id = %s",
            [schedule_id],
        ).fetchall()
    return dict(rows)


def send_finished(postgres: PrivatePostgres, schedule_id: int) -> bool:
    with postgres.connect("faults") as connection:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL), count(*) FROM subscriptions_sendrun "
            "WHERE schedule_id = %s",
            [schedule_id],
        ).fetchone()
    return row[1] > 0 and row[0] == row[1]


def send_failures(postgres: PrivatePostgres, schedule_id: int) -> list[tuple[str, int, str]]:
    """(subscription id, sequence number, reason) of each recorded failure on the schedule's subscriptions."""
    with postgres.connect("faults") as connection:
        return connection.execute(
            "SELECT f.subscription_id::text, f.sequence_number, f.reason "
            "FROM subscriptions_subscriptionsendfailure f JOIN subscriptions_subscription s "
            "ON s.id = f.subscription_id WHERE s.schedule_id = %s",
            [schedule_id],
        ).fetchall()


def create_jobs(client: httpx.Client, uris: list[str], *, delay: float = 0, **fields) -> list[str]:
    """Schedule a job (POST) to each uri, due `delay` seconds from now, through the jobs API; their ids."""
    at = (datetime.now(UTC) + timedelta(seconds=delay)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def create(uri: str) -> str:
        response = client.post("/jobs.json", json={"job": {"uri": uri, "method": "POST", "at": at, **fields}})
        assert response.status_code == 200, response.text
        return response.json()["success"]["job"]["id"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(create, uris))


def jobs_of(postgres: PrivatePostgres, job_ids: list[str]) -> dict[str, tuple[str, str, int]]:
    """Job id -> (state, delivery id, attempt count)."""
    with postgres.connect("faults") as connection:
        rows = connection.execute(
            "SELECT id::text, state, delivery_id::text, attempt_count FROM jobs_job WHERE id = ANY(%s::uuid[])",
            [job_ids],
        ).fetchall()
    return {job_id: (state, delivery, count) for job_id, state, delivery, count in rows}


def attempts_of(postgres: PrivatePostgres, job_ids: list[str]) -> list[tuple[str, int, str, str, datetime]]:
    """(job id, number, outcome, error, started at) of every attempt of the jobs, in order."""
    with postgres.connect("faults") as connection:
        return connection.execute(
            "SELECT job_id::text, number, outcome, error, started_at FROM jobs_attempt "
            "WHERE job_id = ANY(%s::uuid[]) ORDER BY job_id, number",
            [job_ids],
        ).fetchall()


def first_attempts(postgres: PrivatePostgres, job_ids: list[str]) -> dict[str, datetime]:
    with postgres.connect("faults") as connection:
        rows = connection.execute(
            "SELECT id::text, first_attempt_at FROM jobs_job WHERE id = ANY(%s::uuid[])", [job_ids]
        ).fetchall()
    return dict(rows)


def json_error(body: bytes, *keys: str) -> bool:
    """Whether `body` is a JSON object saying something under one of `keys` (an error body)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and any(parsed.get(key) for key in keys)
