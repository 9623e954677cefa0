"""Sending subscriptions their next message: lock, plan, deliver, record.

Every send, whatever started it (a schedule send's batch, `schedule_sends.py`;
"send next now", a requeue or a resend, `triggers.py`), runs in one database
transaction:

1. **Lock** the subscriptions (`SELECT ... FOR UPDATE`, in id order so two sends
   never deadlock), keeping only those still ready and, for a schedule send, not
   yet handled by it. A send that reaches a subscription another send holds waits
   for it, then sees what that one did.
2. **Plan**: the message for (set, sequence number, language), the payload, the
   set's size, with a few queries for the whole batch. A missing message is
   recorded and the subscription left where it is.
3. **Deliver**: the requests, on the process's outbound event loop (SEND_CONCURRENCY
   at a time, over kept-alive connections), retried as `message_sender` says.
4. **Record**: advance (or complete, and start the next set), set -1 where there
   is no address, record failures; a few bulk statements.

The transaction commits only after the sender has answered, so a subscription is
never advanced without its message having been accepted. A worker killed after the
sender accepted a message but before the commit leaves the subscription where it
was: it is sent the same message again, with the same `Idempotency-Key`
(`<subscription id>:<sequence number>`), so the sender can drop the duplicate.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urljoin

from django.conf import settings
from django.db.models import Count, F
from django.utils import timezone

from contentstore.models import Message, MessageSet

from .. import events, metrics
from ..models import ProcessStatus, ResendRequest, SendRun, Subscription, SubscriptionSendFailure
from .message_sender import Delivery, DeliveryOutcome, deliver_all

logger = logging.getLogger(__name__)

PREPEND_KEY = "prepend_next_delivery"


@dataclass
class SendCounts:
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    def __add__(self, other: SendCounts) -> SendCounts:
        return SendCounts(self.sent + other.sent, self.failed + other.failed, self.skipped + other.skipped)


@dataclass
class Missing:
    """A subscription whose message could not be sent as planned (not there, no file)."""

    subscription: Subscription
    sequence_number: int
    reason: str


@dataclass
class Plan:
    deliveries: list[Delivery] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    subscriptions: dict = field(default_factory=dict)  # id -> Subscription
    messages: dict = field(default_factory=dict)  # subscription id -> Message
    set_sizes: dict = field(default_factory=dict)  # (messageset id, lang) -> number of messages
    messagesets: dict = field(default_factory=dict)  # id -> MessageSet


# --- Lock ---------------------------------------------------------------------


def lock_ready(subscription_ids: Iterable, *, run: SendRun | None = None) -> list[Subscription]:
    """Lock the subscriptions among `subscription_ids` that may be sent now, in id order.

    For a schedule send (`run`): only those on its schedule, created before it
    started, and not yet handled by it.
    """
    queryset = Subscription.objects.select_for_update(of=("self",)).ready().filter(id__in=list(subscription_ids))
    if run is not None:
        queryset = queryset.filter(schedule_id=run.schedule_id, created_at__lte=run.started_at).exclude(
            last_run_id=run.pk
        )
    return list(queryset.order_by("id"))


# --- Plan ---------------------------------------------------------------------


def media_url(message: Message) -> str:
    """The absolute URL of the message's file (SEND_MEDIA_BASE_URL before a relative media URL)."""
    url = message.binary_content.content.url
    if "://" in url:
        return url
    return urljoin(settings.SEND_MEDIA_BASE_URL.rstrip("/") + "/", url.lstrip("/"))


def outbound_payload(
    *, subscription: Subscription, messageset: MessageSet, message: Message, resend: bool
) -> tuple[dict, bool]:
    """The message sender's payload (without `to_addr`) and whether it used `prepend_next_delivery`.

    Raises ValueError when an audio message has no file.
    """
    payload = {
        "to_identity": subscription.identity,
        "delivered": "false",
        "resend": "true" if resend else "false",
        "metadata": dict(message.metadata or {}),
    }
    if messageset.channel:
        payload["channel"] = messageset.channel
    prepend = (subscription.metadata or {}).get(PREPEND_KEY)
    if messageset.content_type == "text":
        text = message.text_content or ""
        payload["content"] = text if prepend is None else f"{prepend}\n{text}"
        if message.binary_content_id is not None:
            payload["metadata"]["image_url"] = media_url(message)
    else:
        if message.binary_content_id is None:
            raise ValueError(
                f"Audio message {message.sequence_number} in {message.lang} of {messageset.short_name} has no file"
            )
        payload["metadata"]["voice_speech_url"] = ([] if prepend is None else [prepend]) + [media_url(message)]
    return payload, prepend is not None


def idempotency_key(subscription_id, sequence_number: int, *, resend_request: ResendRequest | None = None) -> str:
    key = f"{subscription_id}:{sequence_number}"
    return key if resend_request is None else f"{key}:resend:{resend_request.pk}"


def message_sequence_number(subscription: Subscription, *, resend: bool) -> int:
    """The message a send is for: the next one, or for a resend the current one (the next but one back)."""
    number = subscription.next_sequence_number
    return number - 1 if resend and number > 1 else number


def plan(subscriptions: list[Subscription], *, resend_request: ResendRequest | None = None) -> Plan:
    """What to send to each subscription, read with a few queries for all of them."""
    result = Plan(subscriptions={subscription.pk: subscription for subscription in subscriptions})
    if not subscriptions:
        return result
    resend = resend_request is not None
    set_ids = {subscription.messageset_id for subscription in subscriptions}
    langs = {subscription.lang for subscription in subscriptions}
    numbers = {message_sequence_number(subscription, resend=resend) for subscription in subscriptions}
    result.messagesets = {
        messageset.pk: messageset for messageset in MessageSet.objects.filter(pk__in=set_ids).select_related("next_set")
    }
    messages = {
        (message.messageset_id, message.sequence_number, message.lang): message
        for message in Message.objects.filter(
            messageset_id__in=set_ids, lang__in=langs, sequence_number__in=numbers
        ).select_related("binary_content")
    }
    result.set_sizes = {
        (row["messageset_id"], row["lang"]): row["size"]
        for row in Message.objects.filter(messageset_id__in=set_ids, lang__in=langs)
        .values("messageset_id", "lang")
        .annotate(size=Count("id"))
    }
    dry_run_sets = set(settings.DRY_RUN_MESSAGESETS)
    for subscription in subscriptions:
        messageset = result.messagesets[subscription.messageset_id]
        number = message_sequence_number(subscription, resend=resend)
        message = messages.get((subscription.messageset_id, number, subscription.lang))
        if message is None:
            reason = (
                f"Missing message: MessageSet: <{messageset.short_name}>, Sequence Number: <{number}>, "
                f"Lang: <{subscription.lang}>"
            )
            result.missing.append(Missing(subscription, number, reason))
            continue
        try:
            payload, _ = outbound_payload(
                subscription=subscription, messageset=messageset, message=message, resend=resend
            )
        except ValueError as error:
            result.missing.append(Missing(subscription, number, str(error)))
            continue
        result.messages[subscription.pk] = message
        result.deliveries.append(
            Delivery(
                subscription_id=subscription.pk,
                identity=subscription.identity,
                sequence_number=number,
                payload=payload,
                idempotency_key=idempotency_key(subscription.pk, number, resend_request=resend_request),
                dry_run=messageset.pk in dry_run_sets,
            )
        )
    return result


# --- Record -------------------------------------------------------------------


def _failures(
    rows: list[tuple[Subscription, int, str]], *, task_id: uuid.UUID, initiated_at: datetime
) -> list[SubscriptionSendFailure]:
    """Record failures, each replacing the subscription's earlier one (which was for the same message:
    a subscription moves on only when its message is sent, and that removes its failure)."""
    if not rows:
        return []
    SubscriptionSendFailure.objects.filter(subscription__in=[subscription for subscription, _, _ in rows]).delete()
    return SubscriptionSendFailure.objects.bulk_create(
        SubscriptionSendFailure(
            subscription=subscription,
            sequence_number=number,
            task_id=task_id,
            initiated_at=initiated_at,
            reason=reason,
        )
        for subscription, number, reason in rows
    )


def _consume_prepends(subscriptions: list[Subscription]) -> None:
    changed = []
    for subscription in subscriptions:
        if (subscription.metadata or {}).get(PREPEND_KEY) is not None:
            subscription.metadata = {**subscription.metadata, PREPEND_KEY: None}
            changed.append(subscription)
    if changed:
        Subscription.objects.bulk_update(changed, ["metadata"])


def _stamp(run: SendRun | None) -> dict:
    """The schedule send that handled a subscription (a send outside one leaves the stamp as it is)."""
    return {} if run is None else {"last_run": run}


def _advance(
    planned: Plan, delivered: list[Delivery], *, run: SendRun | None, now: datetime
) -> tuple[list[Subscription], dict]:
    """Move each delivered subscription on by one, or complete it and start its set's next set;
    those completed, and the new subscription of each that moved on to a next set."""
    advancing, completing = [], []
    for delivery in delivered:
        subscription = planned.subscriptions[delivery.subscription_id]
        size = planned.set_sizes.get((subscription.messageset_id, subscription.lang), 0)
        (completing if delivery.sequence_number >= size else advancing).append(subscription)
    if advancing:
        Subscription.objects.filter(pk__in=[subscription.pk for subscription in advancing]).update(
            next_sequence_number=F("next_sequence_number") + 1, updated_at=now, **_stamp(run)
        )
    followers = {}
    if completing:
        Subscription.objects.filter(pk__in=[subscription.pk for subscription in completing]).update(
            completed=True, active=False, process_status=ProcessStatus.COMPLETED, updated_at=now, **_stamp(run)
        )
        for subscription in completing:
            next_set = planned.messagesets[subscription.messageset_id].next_set
            if next_set is not None:
                followers[subscription] = Subscription(
                    identity=subscription.identity,
                    lang=subscription.lang,
                    messageset=next_set,
                    schedule_id=next_set.default_schedule_id,
                )
        Subscription.objects.bulk_create(followers.values())
    delivered_ids = [delivery.subscription_id for delivery in delivered]
    SubscriptionSendFailure.objects.filter(subscription_id__in=delivered_ids).delete()
    return completing, followers


def _events(
    planned: Plan,
    *,
    delivered: list[Delivery],
    completed: list[Subscription],
    followers: dict,
    failures: list[tuple[Subscription, int, str, str]],
    resend: bool,
    task_id: uuid.UUID,
    now: datetime,
) -> list[dict]:
    """What a send did, as events (subscriptions/events.py)."""
    happened = [
        events.message_sent(planned.subscriptions[delivery.subscription_id], delivery, resend=resend, at=now)
        for delivery in delivered
    ]
    happened += [events.subscription_completed(subscription, at=now) for subscription in completed]
    for subscription, follower in followers.items():
        happened.append(events.subscription_moved(subscription, follower, at=now))
        happened.append(events.subscription_created(follower, via="next_set"))
    happened += [
        events.message_failed(subscription, sequence_number=number, reason=reason, kind=kind, task_id=task_id, at=now)
        for subscription, number, reason, kind in failures
    ]
    return happened


def measure(recorder: metrics.Recorder, planned: Plan) -> None:
    for delivery in planned.deliveries:
        recorder.inc("sbm_subscription_sends", outcome=delivery.outcome)
        recorder.inc("sbm_send_retries", delivery.retries)
        if delivery.outcome == DeliveryOutcome.FAILED:
            recorder.inc("sbm_send_failures", kind=delivery.failure_kind or "other")
        for seconds in delivery.durations:
            recorder.observe("sbm_peer_request_duration_seconds", seconds)
    if planned.missing:
        recorder.inc("sbm_subscription_sends", len(planned.missing), outcome="skipped")
        recorder.inc("sbm_send_failures", len(planned.missing), kind="missing_message")


def record(
    planned: Plan,
    *,
    run: SendRun | None,
    task_id: uuid.UUID,
    initiated_at: datetime,
    advance: bool = True,
) -> SendCounts:
    """Write down what came of each planned send (in the caller's transaction)."""
    now = timezone.now()
    by_outcome: dict[str, list[Delivery]] = {}
    for delivery in planned.deliveries:
        by_outcome.setdefault(delivery.outcome, []).append(delivery)
    delivered = by_outcome.get(DeliveryOutcome.SENT, []) + by_outcome.get(DeliveryOutcome.DRY_RUN, [])
    no_address = by_outcome.get(DeliveryOutcome.NO_ADDRESS, [])
    failed = by_outcome.get(DeliveryOutcome.FAILED, [])

    _consume_prepends([planned.subscriptions[delivery.subscription_id] for delivery in delivered])
    completed, followers = _advance(planned, delivered, run=run, now=now) if advance else ([], {})
    if no_address:
        Subscription.objects.filter(pk__in=[delivery.subscription_id for delivery in no_address]).update(
            process_status=ProcessStatus.NO_ADDRESS, updated_at=now, **_stamp(run)
        )
    failure_rows = [
        (planned.subscriptions[delivery.subscription_id], delivery.sequence_number, delivery.reason)
        for delivery in failed
    ] + [(missing.subscription, missing.sequence_number, missing.reason) for missing in planned.missing]
    if advance:
        _failures(failure_rows, task_id=task_id, initiated_at=initiated_at)
    if run is not None and failure_rows:
        Subscription.objects.filter(pk__in=[subscription.pk for subscription, _, _ in failure_rows]).update(
            last_run=run
        )
    for subscription, number, reason in failure_rows:
        logger.warning("Subscription %s, message %s not sent: %s", subscription.pk, number, reason)
    if events.enabled():
        kinds = [delivery.failure_kind or "other" for delivery in failed] + ["missing_message"] * len(planned.missing)
        failures = [(*row, kind) for row, kind in zip(failure_rows, kinds, strict=True)]
        events.publish_on_commit(
            _events(
                planned,
                delivered=delivered,
                completed=completed,
                followers=followers,
                failures=failures,
                resend=not advance,
                task_id=task_id,
                now=now,
            )
        )
    return SendCounts(sent=len(delivered), failed=len(failed), skipped=len(planned.missing) + len(no_address))


def send_locked(
    subscriptions: list[Subscription],
    *,
    run: SendRun | None,
    task_id: uuid.UUID,
    initiated_at: datetime,
    recorder: metrics.Recorder,
) -> SendCounts:
    """Send each locked subscription its next message and record the outcomes."""
    planned = plan(subscriptions)
    deliver_all(planned.deliveries, deadline=time.monotonic() + settings.SEND_BATCH_SECONDS)
    counts = record(planned, run=run, task_id=task_id, initiated_at=initiated_at)
    measure(recorder, planned)
    return counts
