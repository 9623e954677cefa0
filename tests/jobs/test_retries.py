"""Retries as the reference has them: 10 s, 2 min, 15 min, 2 h and 24 h after the original request.

Time is the test's clock: the dispatcher claims what is due on it and the
deliveries record it, so each retry is checked to the microsecond.
"""

import time
from datetime import timedelta

import pytest
from werkzeug import Response

from jobs.models import AttemptOutcome, Job, JobState

from .helpers import make_job, requests_to

pytestmark = pytest.mark.django_db

SCHEDULE = [10, 120, 900, 7200, 86400]


def answer_late(request) -> Response:
    time.sleep(1.5)
    return Response("late")


def test_a_failing_job_is_retried_on_the_exact_schedule_then_failed(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("down", status=500)
    job = make_job(user, target.url_for("/hook"), at=clock.now())
    original = clock.now()

    assert run_due() == 1
    for number, delay in enumerate(SCHEDULE, start=2):
        due = original + timedelta(seconds=delay)
        assert Job.objects.get(pk=job.pk).next_attempt_at == due
        clock.set(due - timedelta(microseconds=1))
        assert run_due() == 0, f"attempt {number} ran early"
        clock.set(due)
        assert run_due() == 1, f"attempt {number} did not run when due"

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.next_attempt_at is None
    assert job.finished_at == original + timedelta(seconds=86400)
    assert [attempt.started_at - original for attempt in job.attempts.all()] == [
        timedelta(seconds=seconds) for seconds in [0, *SCHEDULE]
    ]
    assert [request.headers["Job-Attempt"] for request in requests_to(target, "/hook")] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
    ]
    clock.advance(days=30)
    assert run_due() == 0


def test_retries_count_from_the_original_request_not_from_the_last_attempt(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("down", status=500)
    job = make_job(user, target.url_for("/hook"), at=clock.now())
    original = clock.now()
    run_due()
    clock.advance(seconds=100)  # the second attempt runs 90 s late
    run_due()
    assert Job.objects.get(pk=job.pk).next_attempt_at == original + timedelta(seconds=120)


def test_a_timeout_and_a_connection_error_are_retried_too(owner, target, run_due, clock, unused_port):
    user, _ = owner
    target.expect_request("/slow").respond_with_handler(answer_late)
    slow = make_job(user, target.url_for("/slow"), timeout=1)
    refused = make_job(user, f"http://127.0.0.1:{unused_port}/")
    run_due()
    for job, error in ((slow, "OutboundTimeout: "), (refused, "OutboundConnectionError: ")):
        job.refresh_from_db()
        assert job.state == JobState.SCHEDULED
        assert job.next_attempt_at == clock.now() + timedelta(seconds=10)
        [attempt] = job.attempts.all()
        assert attempt.outcome == AttemptOutcome.FAILED
        assert attempt.error.startswith(error), attempt.error


@pytest.mark.parametrize(
    ("status", "retry_after", "seconds"),
    [
        pytest.param(429, "3600", 3600, id="a later Retry-After wins over the schedule"),
        pytest.param(503, "1", 10, id="an earlier Retry-After does not bring the retry forward"),
        pytest.param(503, "999999", 7200, id="a Retry-After beyond JOBS_RETRY_AFTER_MAX is cut to it"),
    ],
)
def test_a_retry_after_in_seconds_sets_the_next_attempt(
    owner, target, run_due, clock, settings, status, retry_after, seconds
):
    settings.JOBS_RETRY_AFTER_MAX = 7200
    user, _ = owner
    target.expect_request("/hook").respond_with_data("", status=status, headers={"Retry-After": retry_after})
    job = make_job(user, target.url_for("/hook"))
    run_due()
    assert Job.objects.get(pk=job.pk).next_attempt_at == clock.now() + timedelta(seconds=seconds)


def test_a_retry_after_date_is_honoured(owner, target, run_due, clock):
    user, _ = owner
    later = clock.now() + timedelta(minutes=30)
    target.expect_request("/hook").respond_with_data(
        "", status=503, headers={"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}
    )
    job = make_job(user, target.url_for("/hook"))
    run_due()
    assert Job.objects.get(pk=job.pk).next_attempt_at == later


def test_a_job_may_have_its_own_schedule(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("", status=500)
    job = make_job(user, target.url_for("/hook"), retry_schedule=[5, 30])
    original = clock.now()
    run_due()
    clock.set(original + timedelta(seconds=5))
    run_due()
    assert Job.objects.get(pk=job.pk).next_attempt_at == original + timedelta(seconds=30)
    clock.set(original + timedelta(seconds=30))
    run_due()
    assert Job.objects.get(pk=job.pk).state == JobState.FAILED
    assert len(requests_to(target, "/hook")) == 3


def test_the_service_schedule_is_a_setting(owner, target, run_due, clock, settings):
    settings.JOBS_RETRY_SCHEDULE = [1]
    user, _ = owner
    target.expect_request("/hook").respond_with_data("", status=500)
    job = make_job(user, target.url_for("/hook"))
    run_due()
    clock.advance(seconds=1)
    run_due()
    assert Job.objects.get(pk=job.pk).state == JobState.FAILED


def test_a_success_after_failures_ends_the_retries(owner, target, run_due, clock):
    user, _ = owner
    target.expect_ordered_request("/hook").respond_with_data("", status=502)
    target.expect_ordered_request("/hook").respond_with_data("fine", status=200)
    job = make_job(user, target.url_for("/hook"))
    run_due()
    clock.advance(seconds=10)
    run_due()
    job.refresh_from_db()
    assert (job.state, job.attempt_count, job.next_attempt_at) == (JobState.SUCCEEDED, 2, None)
    assert [attempt.outcome for attempt in job.attempts.all()] == ["failed", "succeeded"]


def test_a_redirect_is_not_followed_and_counts_as_a_failure(owner, target, run_due):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("", status=302, headers={"Location": target.url_for("/elsewhere")})
    job = make_job(user, target.url_for("/hook"))
    run_due()
    assert Job.objects.get(pk=job.pk).state == JobState.SCHEDULED
    assert requests_to(target, "/elsewhere") == []


def test_a_failed_job_retried_from_the_dead_letter_list_gets_a_fresh_schedule(owner, target, run_due, clock, jobs_api):
    user, key = owner
    target.expect_request("/hook").respond_with_data("", status=500)
    job = make_job(user, target.url_for("/hook"), retry_schedule=[1])
    run_due()
    clock.advance(seconds=1)
    run_due()
    assert Job.objects.get(pk=job.pk).state == JobState.FAILED
    clock.advance(hours=1)
    jobs_api.post(f"/jobs/{job.pk}/retry.json?apikey={key}")
    run_due()
    job.refresh_from_db()
    assert (job.state, job.attempt_count) == (JobState.SCHEDULED, 1)
    assert job.next_attempt_at == clock.now() + timedelta(seconds=1)
