"""Sends asked for by hand: send next now, resend, requeue the failures."""

from __future__ import annotations

from django.conf import settings

from contentstore.models import Message

from ..models import ProcessStatus, ResendRequest, Subscription, SubscriptionSendFailure
from .sending import message_sequence_number


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


def subscription_failures_requeue_queue(*, failure_ids: list[int]) -> None:
    """Queue the requeue of these failures (one task) once the current transaction commits."""
    from .. import tasks

    tasks.requeue_failures.delay_on_commit(list(failure_ids))


def subscription_failures_requeue_all_queue() -> None:
    """Queue the walk that requeues every failure once the current transaction commits."""
    from .. import tasks

    tasks.requeue_failed_tasks.delay_on_commit()
