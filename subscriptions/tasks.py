"""Celery tasks of the send pipeline: they take ids and call a service.

Send tasks are safe to run twice (a subscription is locked and re-checked before
it is sent, and a schedule send's batch is done once), so they are acked late:
a task lost with its worker is run again.
"""

import uuid

from celery import shared_task
from django.conf import settings

from . import metrics, services

SEND_LIMITS = {
    "acks_late": True,
    "ignore_result": True,
    "time_limit": settings.SEND_TASK_TIME_LIMIT,
    "soft_time_limit": settings.SEND_TASK_TIME_LIMIT - 10,
}
# Walking ids and queueing tasks: a few queries per SEND_BATCH_SIZE ids.
WALK_LIMITS = {"ignore_result": True, "time_limit": 900, "soft_time_limit": 870}


def _task_id(task) -> uuid.UUID:
    try:
        return uuid.UUID(str(task.request.id))
    except ValueError:
        return uuid.uuid4()


@shared_task(name="subscriptions.send_schedule", acks_late=True, **WALK_LIMITS)
def send_schedule(schedule_id: int) -> None:
    """Fire a schedule: every ready subscription on it is sent its next message, once per cron period.

    What each schedule's periodic task runs (SCHEDULE_FIRE_TASK), and `POST schedule/{id}/send/`."""
    services.schedule_send(schedule_id=schedule_id)


@shared_task(name="subscriptions.send_batch", bind=True, **SEND_LIMITS)
def send_batch(self, batch_id: int, subscription_ids: list[str]) -> None:
    """Send one batch of a schedule send (queued by the fire's walk)."""
    services.send_batch_process(batch_id=batch_id, subscription_ids=subscription_ids, task_id=_task_id(self))


@shared_task(name="subscriptions.send_next", bind=True, **SEND_LIMITS)
def send_next(self, subscription_ids: list[str]) -> None:
    """Send each subscription its next message now (send next now)."""
    services.subscriptions_send_next(subscription_ids=subscription_ids, task_id=_task_id(self))


@shared_task(name="subscriptions.requeue_failures", bind=True, **SEND_LIMITS)
def requeue_failures(self, failure_ids: list[int]) -> None:
    """Send again what the failures were for."""
    services.subscription_failures_requeue(failure_ids=failure_ids, task_id=_task_id(self))


@shared_task(name="subscriptions.requeue_failed_tasks", **WALK_LIMITS)
def requeue_failed_tasks() -> None:
    """Queue the requeue of every recorded failure."""
    services.subscription_failures_requeue_all()


@shared_task(name="subscriptions.resend", **SEND_LIMITS)
def resend(resend_request_id: int) -> None:
    """Send a subscription's current message again."""
    services.subscription_resend(resend_request_id=resend_request_id)


@shared_task(name="subscriptions.find_behind_subscriptions", **WALK_LIMITS)
def find_behind_subscriptions() -> None:
    """Queue the check of every ready subscription against where its schedule says it should be."""
    services.behind_subscriptions_find_all()


@shared_task(name="subscriptions.find_behind_in", ignore_result=True, time_limit=600, soft_time_limit=570)
def find_behind_in(subscription_ids: list[str]) -> None:
    services.behind_subscriptions_find(subscription_ids=subscription_ids)


@shared_task(name="subscriptions.prune_send_runs", ignore_result=True, time_limit=900, soft_time_limit=870)
def prune_send_runs() -> None:
    """Delete the finished send runs past SEND_RUN_RETENTION_DAYS, and count them."""
    for what, count in services.send_runs_prune().items():
        metrics.record("sbm_jobs_pruned", count, what=what)


@shared_task(name="subscriptions.estimate_daily_sends", ignore_result=True, time_limit=300, soft_time_limit=270)
def estimate_daily_sends() -> None:
    """Record today's estimated sends per message set."""
    services.estimated_sends_calculate()
