"""Retention: finished jobs and their attempts go once they are old enough; nothing else does.

Finish times are set in the past explicitly; the pruning is judged by the test's clock.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import generate_latest

from cache_api.models import Cache
from core.redis import get_redis
from jobs import services, tasks
from jobs.models import Attempt, AttemptOutcome, Job, JobKind, JobState
from subscriptions import metrics
from tests.beat import periodic_task_of_migration
from webhooks.models import TopicWebhook, WebhookDelivery

from .helpers import celery_worker, wait_until


def finished(user, state: str, age: timedelta, *, now, attempts: int = 1, **fields) -> Job:
    """A job that finished in `state` `age` before `now`, with `attempts` attempts."""
    job = Job.objects.create(
        user=user,
        uri="https://example.org/hook",
        at=now - age - timedelta(minutes=1),
        timeout=30,
        state=state,
        finished_at=now - age,
        attempt_count=attempts,
        **fields,
    )
    outcome = AttemptOutcome.SUCCEEDED if state == JobState.SUCCEEDED else AttemptOutcome.FAILED
    for number in range(1, attempts + 1):
        Attempt.objects.create(job=job, number=number, outcome=outcome, started_at=now - age)
    return job


def active(user, state: str, *, now, age: timedelta) -> Job:
    """A job created `age` before `now`, still scheduled or running (it was due then)."""
    job = Job.objects.create(
        user=user, uri="https://example.org/hook", at=now - age, timeout=30, state=state, next_attempt_at=now - age
    )
    Attempt.objects.create(job=job, number=1, outcome=AttemptOutcome.FAILED, started_at=now - age)
    return job


def remaining() -> set:
    return set(Job.objects.values_list("pk", flat=True))


def test_finished_jobs_past_their_retention_go_with_their_attempts_and_the_rest_stay(owner, clock, settings):
    settings.JOBS_RETENTION_DAYS, settings.JOBS_DEAD_RETENTION_DAYS = 7, 30
    user, now = owner.user, clock.now()
    old_success = finished(user, JobState.SUCCEEDED, timedelta(days=7, seconds=1), now=now, attempts=2)
    old_cancelled = finished(user, JobState.CANCELLED, timedelta(days=8), now=now)
    old_dead = finished(user, JobState.FAILED, timedelta(days=30, seconds=1), now=now, attempts=3)
    kept = {
        finished(user, JobState.SUCCEEDED, timedelta(days=6, hours=23), now=now).pk,
        finished(user, JobState.CANCELLED, timedelta(days=1), now=now).pk,
        finished(user, JobState.FAILED, timedelta(days=8), now=now).pk,  # a dead letter younger than its limit
        finished(user, JobState.FAILED, timedelta(days=29, hours=23), now=now).pk,
        active(user, JobState.SCHEDULED, now=now, age=timedelta(days=60)).pk,
        active(user, JobState.RUNNING, now=now, age=timedelta(days=60)).pk,
    }

    pruned = services.jobs_prune(now=now)

    assert remaining() == kept
    assert not Attempt.objects.filter(job__in=[old_success.pk, old_cancelled.pk, old_dead.pk]).exists()
    assert set(Attempt.objects.values_list("job_id", flat=True)) == kept
    assert pruned.counts == {"jobs": 2, "dead": 1, "attempts": 6}


def test_the_limits_are_settings(owner, clock, settings):
    settings.JOBS_RETENTION_DAYS, settings.JOBS_DEAD_RETENTION_DAYS = 1, 2
    user, now = owner.user, clock.now()
    finished(user, JobState.SUCCEEDED, timedelta(days=1, seconds=1), now=now)
    finished(user, JobState.FAILED, timedelta(days=2, seconds=1), now=now)
    kept = {finished(user, JobState.FAILED, timedelta(days=1, seconds=1), now=now).pk}

    assert services.jobs_prune(now=now).counts == {"jobs": 1, "dead": 1, "attempts": 2}
    assert remaining() == kept


def test_it_deletes_in_bounded_batches_each_its_own_transaction(owner, clock, settings):
    settings.JOBS_RETENTION_BATCH = 3
    user, now = owner.user, clock.now()
    for _ in range(10):
        finished(user, JobState.SUCCEEDED, timedelta(days=10), now=now, attempts=2)
    deleted_per_statement = []

    def count_deletes(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith('DELETE FROM "jobs_job"'):
            deleted_per_statement.append((context["cursor"].rowcount, connection.in_atomic_block))
        return result

    with connection.execute_wrapper(count_deletes):
        pruned = services.jobs_prune(now=now)

    assert deleted_per_statement == [(3, True), (3, True), (3, True), (1, True)]
    assert pruned.batches == 4
    assert pruned.counts == {"jobs": 10, "attempts": 20}
    assert remaining() == set()


def test_one_batch_deletes_at_most_its_limit(owner, clock):
    user, now = owner.user, clock.now()
    for _ in range(10):
        finished(user, JobState.SUCCEEDED, timedelta(days=10), now=now)
    before = now - timedelta(days=7)

    sizes = [services.jobs_prune_batch(state=JobState.SUCCEEDED, before=before, limit=3)["jobs"] for _ in range(5)]

    assert sizes == [3, 3, 3, 1, 0]


def test_a_job_goes_after_its_callback_and_stays_while_the_callback_stays(owner, clock):
    user, now = owner.user, clock.now()
    parent = finished(user, JobState.SUCCEEDED, timedelta(days=10), now=now)
    finished(user, JobState.SUCCEEDED, timedelta(days=9), now=now, parent=parent, kind=JobKind.CALLBACK)
    waiting_parent = finished(user, JobState.SUCCEEDED, timedelta(days=10), now=now)
    retrying = active(user, JobState.SCHEDULED, now=now, age=timedelta(hours=1))
    Job.objects.filter(pk=retrying.pk).update(parent=waiting_parent, kind=JobKind.CALLBACK)
    dead_parent = finished(user, JobState.SUCCEEDED, timedelta(days=10), now=now)
    dead_callback = finished(
        user, JobState.FAILED, timedelta(days=10), now=now, parent=dead_parent, kind=JobKind.FAILURE_CALLBACK
    )

    pruned = services.jobs_prune(now=now)

    assert remaining() == {waiting_parent.pk, retrying.pk, dead_parent.pk, dead_callback.pk}
    assert pruned.counts["jobs"] == 2


def test_a_webhooks_pending_delivery_is_kept_and_its_older_deliveries_go(owner, clock):
    user, now = owner.user, clock.now()
    cache = Cache.objects.create(name="news")
    older = finished(user, JobState.SUCCEEDED, timedelta(days=10), now=now, keyring="webhook:1")
    dead = finished(user, JobState.FAILED, timedelta(days=40), now=now, keyring="webhook:1")
    last = finished(user, JobState.SUCCEEDED, timedelta(days=9), now=now, keyring="webhook:1")
    webhook = TopicWebhook.objects.create(
        cache=cache, name="hook", topic="t", destination="https://example.org/hook", user=user, last_seq=3, pending=last
    )
    for seq, job in enumerate([dead, older, last], start=1):
        WebhookDelivery.objects.create(webhook=webhook, job=job, page=1, seq=seq)

    pruned = services.jobs_prune(now=now)

    assert remaining() == {last.pk}
    assert list(WebhookDelivery.objects.values_list("seq", flat=True)) == [3]
    webhook.refresh_from_db()
    assert (webhook.pending_id, webhook.last_seq) == (last.pk, 3)
    assert pruned.counts == {"jobs": 1, "dead": 1, "attempts": 2, "webhook_deliveries": 2}


def test_a_job_another_transaction_holds_is_left_for_a_later_run(owner, transactional_db, clock):
    user, now = owner.user, clock.now()
    held_job = finished(user, JobState.FAILED, timedelta(days=40), now=now)
    other = finished(user, JobState.FAILED, timedelta(days=40), now=now)
    locked, release = threading.Event(), threading.Event()

    def hold_it():
        try:
            with transaction.atomic():
                Job.objects.select_for_update().get(pk=held_job.pk)  # as job_retry would
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_it)
    holder.start()
    locked.wait(30)
    try:
        first = services.jobs_prune(now=now)
    finally:
        release.set()
        holder.join()

    assert first.counts == {"dead": 1, "attempts": 1}
    assert remaining() == {held_job.pk}
    assert other.pk not in remaining()
    assert services.jobs_prune(now=now).counts == {"dead": 1, "attempts": 1}
    assert remaining() == set()


def test_the_periodic_task_is_registered_and_a_worker_prunes_and_counts(owner, transactional_db, settings):
    settings.JOBS_RETENTION_DAYS = 7
    periodic = periodic_task_of_migration("jobs", "Prune finished jobs")
    assert (periodic.task, periodic.enabled, periodic.crontab.minute) == ("jobs.prune_finished", True, "17")
    now = timezone.now()
    old = finished(owner.user, JobState.SUCCEEDED, timedelta(days=8), now=now, attempts=2)
    young = finished(owner.user, JobState.SUCCEEDED, timedelta(days=6), now=now)

    with celery_worker():
        tasks.prune_finished_jobs.delay()
        wait_until(lambda: not Job.objects.filter(pk=old.pk).exists(), what="the old job to be pruned")

    assert remaining() == {young.pk}
    stored = get_redis().hgetall(metrics.METRICS_KEY)
    assert float(stored[b'sbm_jobs_pruned{"what":"jobs"}']) == 1
    assert float(stored[b'sbm_jobs_pruned{"what":"attempts"}']) == 2
    exposed = generate_latest(metrics.registry).decode()
    assert 'sbm_jobs_pruned_total{what="attempts"} 2.0' in exposed


@pytest.mark.parametrize("state", [JobState.SCHEDULED, JobState.RUNNING])
def test_an_active_job_with_a_stale_finish_time_is_never_pruned(owner, clock, state):
    job = active(owner.user, state, now=clock.now(), age=timedelta(days=90))
    Job.objects.filter(pk=job.pk).update(finished_at=clock.now() - timedelta(days=90))  # from before a retry

    assert services.jobs_prune(now=clock.now()).counts == {}
    assert remaining() == {job.pk}
