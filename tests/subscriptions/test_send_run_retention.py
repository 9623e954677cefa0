"""Retention of schedule sends: finished runs past SEND_RUN_RETENTION_DAYS go with their batches,
each schedule's latest run stays (it keeps a fire in its period from sending again)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core.redis import get_redis
from harness.waiting import wait_until
from subscriptions import metrics, services, tasks
from subscriptions.models import SendBatch, SendRun
from tests.beat import periodic_task_of_migration

from .factories import fresh, make_messages, make_messageset, make_schedule, make_subscription, week

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_sends(sender, fire, settings):
    """Two subscriptions on a weekly schedule, fired three weeks (one batch per subscription); the
    second is deactivated after the first week, so its last run is the first."""
    settings.SEND_BATCH_SIZE = 1
    messageset = make_messageset()
    make_messages(messageset, 5)
    kept_on = make_subscription(messageset)
    left = make_subscription(messageset, identity="0b7d7f6c-5b1e-4b69-9d0e-6a4f0d6c2a11")
    fire(messageset.default_schedule, at=week(0))
    services.subscription_deactivate(subscription=fresh(left))
    fire(messageset.default_schedule, at=week(1))
    fire(messageset.default_schedule, at=week(2))
    runs = list(SendRun.objects.order_by("period_start"))
    assert len(runs) == 3 and all(run.finished_at for run in runs)
    return messageset.default_schedule, kept_on, left, runs


def test_finished_runs_past_their_retention_go_with_their_batches_but_each_schedules_latest_stays(
    three_sends, settings, fire
):
    settings.SEND_RUN_RETENTION_DAYS = 30
    schedule, kept_on, left, (first, second, latest) = three_sends
    assert fresh(left).last_run_id == first.pk
    later = max(run.finished_at for run in (first, second, latest)) + timedelta(days=30, seconds=1)

    pruned = services.send_runs_prune(now=later)

    assert list(SendRun.objects.values_list("pk", flat=True)) == [latest.pk]
    assert set(SendBatch.objects.values_list("run_id", flat=True)) == {latest.pk}
    assert pruned == {"send_runs": 2, "send_batches": 3}
    assert fresh(left).last_run_id is None  # let go of, not deleted
    assert fresh(kept_on).last_run_id == latest.pk
    position = fresh(kept_on).next_sequence_number
    fire(schedule, at=week(2))  # the latest period fired again: still sends nothing
    assert fresh(kept_on).next_sequence_number == position


def test_runs_younger_than_their_retention_stay(three_sends, settings):
    settings.SEND_RUN_RETENTION_DAYS = 30
    *_, runs = three_sends
    almost = min(run.finished_at for run in runs) + timedelta(days=29, hours=23)

    assert services.send_runs_prune(now=almost) == {}
    assert SendRun.objects.count() == 3


def test_it_deletes_batches_then_runs_a_bounded_number_per_transaction(three_sends, settings):
    settings.JOBS_RETENTION_BATCH = 1
    deleted = []

    def count_deletes(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        table = sql.removeprefix("DELETE FROM ").split(" ", 1)[0].strip('"')
        if sql.startswith("DELETE FROM") and context["cursor"].rowcount:
            deleted.append((table, context["cursor"].rowcount))
        return result

    with connection.execute_wrapper(count_deletes):
        services.send_runs_prune(now=timezone.now() + timedelta(days=31))

    assert deleted == [("subscriptions_sendbatch", 1)] * 3 + [("subscriptions_sendrun", 1)] * 2


@pytest.mark.django_db(transaction=True)
def test_the_periodic_task_is_registered_and_a_worker_prunes_and_counts(settings, celery_worker):
    settings.SEND_RUN_RETENTION_DAYS = 1
    periodic = periodic_task_of_migration("subscriptions", "Prune finished send runs")
    assert (periodic.task, periodic.enabled) == ("subscriptions.prune_send_runs", True)
    schedule, long_ago = make_schedule(), timezone.now() - timedelta(days=2)
    runs = [
        SendRun.objects.create(schedule=schedule, period_start=week(n), started_at=long_ago, finished_at=long_ago)
        for n in range(3)
    ]
    SendBatch.objects.bulk_create(SendBatch(run=run, size=1, done_at=long_ago) for run in runs for _ in range(2))

    tasks.prune_send_runs.delay()
    # The task counts what it pruned after the deletes commit: the test waits for both.
    counted = {b'sbm_jobs_pruned{"what":"send_runs"}', b'sbm_jobs_pruned{"what":"send_batches"}'}
    wait_until(
        lambda: SendRun.objects.count() == 1 and counted <= set(get_redis().hgetall(metrics.METRICS_KEY)),
        what="the old send runs to be pruned and counted",
        timeout=30,
        every=0.05,
    )

    assert list(SendRun.objects.values_list("pk", flat=True)) == [runs[-1].pk]
    assert SendBatch.objects.count() == 2
    stored = get_redis().hgetall(metrics.METRICS_KEY)
    assert float(stored[b'sbm_jobs_pruned{"what":"send_runs"}']) == 2
    assert float(stored[b'sbm_jobs_pruned{"what":"send_batches"}']) == 4
