"""Sends asked for by hand: a schedule's send now, send next now, resend, requeue the failures.

The web side checks and queues them (`*_queue`, `*_refusal`, `resend_request_create`);
the worker side runs them through the pipeline of `sending.py` (lock, plan,
deliver, record), each in one transaction.
"""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from contentstore.models import Message, Schedule

from .. import events, metrics
from ..models import ProcessStatus, ResendRequest, Subscription, SubscriptionSendFailure
from .message_sender import Delivery, DeliveryOutcome, deliver_all
from .sending import SendCounts, lock_ready, measure, message_sequence_number, plan, record, send_locked

logger = logging.getLogger(__name__)


def subscription_send_refusal(*, subscription: Subscription) -> str | None:
    """Why the subscription cannot be sent its next message now, or None when it can."""
    if subscription.completed or subscription.process_status == ProcessStatus.COMPLETED:
        return "Subscription has completed"
    if not subscription.active:
        return "Subscription is not active"
    if subscription.process_status != ProcessStatus.READY:
        label = (
            ProcessStatus(subscription.process_status).label
            if subscription.process_status in ProcessStatus
            else "unknown"
        )
        return f"Subscription is not ready: process_status {subscription.process_status} ({label})"
    number = message_sequence_number(subscription, resend=False)
    if not Message.objects.filter(
        messageset_id=subscription.messageset_id, sequence_number=number, lang=subscription.lang
    ).exists():
        return (
            f"Missing message: MessageSet: <{subscription.messageset}>, Sequence Number: <{number}>, "
            f"Lang: <{subscription.lang}>"
        )
    return None


def schedule_send_queue(*, schedule: Schedule) -> None:
    """Queue the send of `schedule` (what its periodic task runs) once the current transaction commits."""
    from .. import tasks

    tasks.send_schedule.delay_on_commit(schedule.pk)


def subscription_send_queue(*, subscription: Subscription) -> str | None:
    """Queue the send of the subscription's next message; the refusal instead when it cannot be sent."""
    from .. import tasks

    refusal = subscription_send_refusal(subscription=subscription)
    if refusal is None:
        tasks.send_next.delay_on_commit([str(subscription.pk)])
    return refusal


def resend_request_create(*, subscription: Subscription) -> ResendRequest:
    """Record a request to resend the subscription's current message, and queue the resend."""
    from .. import tasks

    resend_request = ResendRequest.objects.create(subscription=subscription)
    tasks.resend.delay_on_commit(resend_request.pk)
    return resend_request


def _queue(task, *args) -> str:
    """Queue `task` once the current transaction (if any) commits; its id, known now."""
    task_id = str(uuid.uuid4())
    transaction.on_commit(lambda: task.apply_async(args=args, task_id=task_id))
    return task_id


def behind_subscriptions_find_queue() -> str:
    """Queue the search for subscriptions behind their schedule; the task's id."""
    from .. import tasks

    return _queue(tasks.find_behind_subscriptions)


def estimated_sends_queue() -> str:
    """Queue the recording of today's estimated sends per message set; the task's id."""
    from .. import tasks

    return _queue(tasks.estimate_daily_sends)


def subscription_failures_requeue_queue(*, failure_ids: list[int]) -> None:
    """Queue the requeue of these failures (one task) once the current transaction commits."""
    from .. import tasks

    tasks.requeue_failures.delay_on_commit(list(failure_ids))


def subscription_failures_requeue_all_queue() -> None:
    """Queue the walk that requeues every failure once the current transaction commits."""
    from .. import tasks

    tasks.requeue_failed_tasks.delay_on_commit()


# --- What the worker runs -------------------------------------------------------


def subscription_failures_requeue_all() -> int:
    """Queue the requeue of every recorded failure, SEND_BATCH_SIZE per task; how many tasks."""
    from .. import tasks

    failures = SubscriptionSendFailure.objects.order_by("pk").values_list("pk", flat=True)
    after, queued = 0, 0
    while True:
        ids = list(failures.filter(pk__gt=after)[: settings.SEND_BATCH_SIZE])
        if not ids:
            return queued
        tasks.requeue_failures.delay_on_commit(ids)
        queued += 1
        after = ids[-1]


def subscriptions_send_next(*, subscription_ids: list, task_id: uuid.UUID | None = None) -> SendCounts:
    """Send each of the subscriptions (that is ready) its next message now ("send next now")."""
    recorder = metrics.Recorder()
    initiated_at = timezone.now()
    with transaction.atomic():
        subscriptions = lock_ready(subscription_ids)
        counts = send_locked(
            subscriptions, run=None, task_id=task_id or uuid.uuid4(), initiated_at=initiated_at, recorder=recorder
        )
    recorder.flush()
    return counts


def subscription_failures_requeue(*, failure_ids: list[int], task_id: uuid.UUID | None = None) -> SendCounts:
    """Send again what the failures were for, each only if its subscription is still ready and at
    that message; the failures are removed (a new one is recorded if the send fails again)."""
    recorder = metrics.Recorder()
    initiated_at = timezone.now()
    with transaction.atomic():
        subscription_ids = set(
            SubscriptionSendFailure.objects.filter(pk__in=failure_ids).values_list("subscription_id", flat=True)
        )
        subscriptions = {subscription.pk: subscription for subscription in lock_ready(subscription_ids)}
        failures = list(SubscriptionSendFailure.objects.select_for_update().filter(pk__in=failure_ids).order_by("pk"))
        SubscriptionSendFailure.objects.filter(pk__in=[failure.pk for failure in failures]).delete()
        to_send, requeued = {}, []
        for failure in failures:
            subscription = subscriptions.get(failure.subscription_id)
            if subscription is None:
                logger.info("Failure %s dropped: subscription %s is not ready.", failure.pk, failure.subscription_id)
            elif failure.sequence_number not in (None, subscription.next_sequence_number):
                logger.info(
                    "Failure %s dropped: subscription %s has moved on from message %s.",
                    failure.pk,
                    subscription.pk,
                    failure.sequence_number,
                )
            else:
                to_send[subscription.pk] = subscription
                requeued.append(failure)
        if events.enabled():
            events.publish_on_commit([events.send_requeued(failure, at=initiated_at) for failure in requeued])
        counts = send_locked(
            list(to_send.values()),
            run=None,
            task_id=task_id or uuid.uuid4(),
            initiated_at=initiated_at,
            recorder=recorder,
        )
    recorder.flush()
    return counts


def subscription_resend(*, resend_request_id: int) -> Delivery | None:
    """Send the subscription's current message again (`"resend": "true"`), without advancing it.

    The resend request keeps the message and the sender's outbound id. A failed
    resend is logged and counted; nothing else changes.
    """
    recorder = metrics.Recorder()
    with transaction.atomic():
        resend_request = ResendRequest.objects.select_related("subscription").filter(pk=resend_request_id).first()
        if resend_request is None:
            return None
        subscriptions = lock_ready([resend_request.subscription_id])
        if not subscriptions:
            logger.info(
                "Resend %s not sent: subscription %s is not ready.", resend_request.pk, resend_request.subscription_id
            )
            return None
        planned = plan(subscriptions, resend_request=resend_request)
        for missing in planned.missing:
            logger.warning("Resend %s not sent: %s", resend_request.pk, missing.reason)
        deliver_all(planned.deliveries, deadline=time.monotonic() + settings.SEND_BATCH_SECONDS)
        record(planned, run=None, task_id=uuid.uuid4(), initiated_at=timezone.now(), advance=False)
        delivery = planned.deliveries[0] if planned.deliveries else None
        if delivery is not None:
            resend_request.message = planned.messages.get(delivery.subscription_id)
            resend_request.outbound = _as_uuid(delivery.outbound_id)
            resend_request.save(update_fields=["message", "outbound"])
            if delivery.outcome == DeliveryOutcome.FAILED:
                logger.warning("Resend %s failed: %s", resend_request.pk, delivery.reason)
        measure(recorder, planned)
    recorder.flush()
    return delivery


def _as_uuid(value: str | None) -> uuid.UUID | None:
    try:
        return None if value is None else uuid.UUID(str(value))
    except ValueError:
        return None
