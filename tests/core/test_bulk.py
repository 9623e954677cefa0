"""insert_rows: many rows in one go, each value stored as a save would store it."""

from datetime import UTC, datetime

from core.bulk import insert_rows
from jobs.models import Attempt, AttemptOutcome, Job


def test_rows_are_stored_with_every_kind_of_value(db, django_user_model):
    user = django_user_model.objects.create_user(username="bulk", email="bulk@example.org", password="x")
    job = Job.objects.create(user=user, uri="https://example.org/", at=datetime(2030, 1, 1, tzinfo=UTC), timeout=5)
    started = datetime(2030, 1, 1, 12, 0, 1, 250_000, tzinfo=UTC)
    tricky = 'tab\there, line\nbreak, back\\slash, "quotes", \\N, ünïcode'
    insert_rows(
        Attempt,
        [
            {
                "job_id": job.pk,
                "number": 1,
                "outcome": AttemptOutcome.FAILED,
                "started_at": started,
                "duration_ms": 12.5,
                "status_code": 503,
                "http_version": "HTTP/1.1",
                "response_headers": [["X-Odd", tricky], ["Retry-After", "10"]],
                "body_excerpt": tricky,
                "error": "HTTP 503",
            },
            {"job_id": job.pk, "number": 2, "outcome": AttemptOutcome.LOST, "started_at": started},
        ],
    )
    first, second = Attempt.objects.filter(job=job).order_by("number")
    assert (first.started_at, first.duration_ms, first.status_code) == (started, 12.5, 503)
    assert first.response_headers == [["X-Odd", tricky], ["Retry-After", "10"]]
    assert (first.body_excerpt, first.error) == (tricky, "HTTP 503")
    assert (second.duration_ms, second.status_code, second.response_headers, second.body_excerpt) == (
        None,
        None,
        [],
        "",
    )


def test_nothing_to_insert_touches_nothing(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        insert_rows(Attempt, [])
