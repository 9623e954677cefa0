"""Figures for the dashboard: schedule sends' batches, failures, behind subscriptions, jobs and attempts,
written as the pipeline and the jobs face write them, at times around a fixed moment."""

from datetime import UTC, datetime, timedelta

from jobs.models import Attempt, Job, JobKind, JobState
from subscriptions.models import BehindSubscription, SendBatch, SendRun, SubscriptionSendFailure

# A Wednesday at 14:30 UTC: mid-day and mid-hour, so "today" and "the last hour" hold no boundary.
NOW = datetime(2030, 1, 9, 14, 30, tzinfo=UTC)


def make_batch(schedule, *, done_at: datetime, sent: int = 0, failed: int = 0, skipped: int = 0) -> SendBatch:
    run, _ = SendRun.objects.get_or_create(
        schedule=schedule, period_start=done_at.replace(minute=0, second=0), defaults={"started_at": done_at}
    )
    return SendBatch.objects.create(
        run=run,
        size=sent + failed + skipped,
        queued_at=done_at,
        done_at=done_at,
        sent=sent,
        failed=failed,
        skipped=skipped,
    )


def make_failure(subscription, reason: str) -> SubscriptionSendFailure:
    return SubscriptionSendFailure.objects.create(
        subscription=subscription, task_id="00000000-0000-0000-0000-000000000001", initiated_at=NOW, reason=reason
    )


def make_behind(subscription, messages_behind: int) -> BehindSubscription:
    return BehindSubscription.objects.create(
        subscription=subscription,
        messages_behind=messages_behind,
        current_messageset=subscription.messageset,
        current_sequence_number=subscription.next_sequence_number,
        expected_messageset=subscription.messageset,
        expected_sequence_number=subscription.next_sequence_number + messages_behind,
    )


def make_job(
    user, *, state: str = JobState.SCHEDULED, at: datetime = NOW, attempt_count: int = 0, kind: str = JobKind.REQUEST
) -> Job:
    active = state in (JobState.SCHEDULED, JobState.RUNNING)
    return Job.objects.create(
        user=user,
        kind=kind,
        uri="https://example.org/hook",
        at=at,
        timeout=10,
        state=state,
        attempt_count=attempt_count,
        next_attempt_at=at if active else None,
        finished_at=None if active else NOW,
    )


def make_attempt(job: Job, *, started_at: datetime, outcome: str, number: int = 1) -> Attempt:
    return Attempt.objects.create(job=job, number=number, outcome=outcome, started_at=started_at)


def minutes_ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def make_figures(user) -> dict:
    """A known set of figures for every messaging and jobs chart; what each chart should show of them."""
    from tests.subscriptions.factories import make_messageset, make_schedule, make_subscription

    baby = make_messageset("baby")  # weekly, Mondays 08:00
    pregnancy = make_messageset("pregnancy", schedule=make_schedule(day_of_week="*"))  # daily 08:00
    babies = [make_subscription(baby, identity=f"00000000-0000-0000-0000-00000000000{n}") for n in range(3)]
    make_subscription(pregnancy, identity="00000000-0000-0000-0000-000000000010")
    make_subscription(pregnancy, identity="00000000-0000-0000-0000-000000000011")

    make_batch(baby.default_schedule, done_at=NOW.replace(hour=10, minute=15), sent=5, failed=1)
    make_batch(pregnancy.default_schedule, done_at=NOW.replace(hour=13, minute=5), sent=2, skipped=1)
    make_batch(pregnancy.default_schedule, done_at=NOW - timedelta(days=3), sent=7)
    make_batch(pregnancy.default_schedule, done_at=NOW - timedelta(days=40), sent=100)  # before the 30 days

    make_failure(babies[0], "Missing message: MessageSet: <baby>, Sequence Number: <2>, Lang: <eng>")
    make_failure(babies[1], "Message sender answered HTTP 503: busy (after 3 attempts)")
    make_failure(babies[2], "Message sender: OutboundTimeout: timed out")
    make_behind(babies[0], 2)
    make_behind(babies[1], 1)

    for state, count, attempts in (
        (JobState.SCHEDULED, 2, 0),
        (JobState.SCHEDULED, 1, 1),
        (JobState.RUNNING, 1, 1),
        (JobState.FAILED, 3, 5),
        (JobState.SUCCEEDED, 2, 1),
    ):
        for _ in range(count):
            make_job(user, state=state, attempt_count=attempts)
    make_job(user, kind=JobKind.RECURRING)  # a schedule of jobs, not a job waiting to be sent
    for late_ms, outcome, started in ((100, "succeeded", 10), (200, "succeeded", 10), (1000, "failed", 5)):
        job = make_job(user, state=JobState.SUCCEEDED, at=minutes_ago(started))
        make_attempt(job, started_at=job.at + timedelta(milliseconds=late_ms), outcome=outcome)
    retried = make_job(user, state=JobState.SUCCEEDED, at=minutes_ago(30))
    make_attempt(retried, started_at=minutes_ago(4), outcome="lost", number=2)  # a retry: no lateness
    old = make_job(user, state=JobState.SUCCEEDED, at=minutes_ago(120))
    make_attempt(old, started_at=minutes_ago(120), outcome="succeeded")  # before the last hour

    return {
        "sends-per-day": {
            ("2030-01-09", "sent"): 7,
            ("2030-01-09", "failed"): 1,
            ("2030-01-09", "skipped"): 1,
            ("2030-01-06", "sent"): 7,
        },
        "sends-per-hour": {
            ("10:00", "sent"): 5,
            ("10:00", "failed"): 1,
            ("13:00", "sent"): 2,
            ("13:00", "skipped"): 1,
        },
        "send-failures": {
            ("missing_message", "failures"): 1,
            ("http_5xx", "failures"): 1,
            ("timeout", "failures"): 1,
        },
        "subscriptions-behind": {("baby", "subscriptions"): 2},
        "estimated-sends": {
            **{(f"2030-01-{day:02d}", "pregnancy"): 2 for day in range(9, 16)},
            ("2030-01-14", "baby"): 3,
        },
        "job-states": {
            ("scheduled", "jobs"): 2,
            ("failed, retry scheduled", "jobs"): 1,
            ("running", "jobs"): 1,
            ("dead (failed)", "jobs"): 3,
        },
        "job-lateness": {("p50", "lateness (ms)"): 200, ("p99", "lateness (ms)"): 984},
        "job-deliveries": {
            ("14:20", "succeeded"): 2,
            ("14:25", "failed"): 1,
            ("14:26", "lost"): 1,
        },
    }
