"""The messaging store's life as CloudEvents on a topic anyone with a grant may subscribe to.

When MESSAGING_EVENTS_TOPIC (`<cache>/<topic>`) is set, what the services do to
subscriptions (created, message sent or failed, completed, moved to the next set,
requeued, resent) is published there, each a JSON text message in the CloudEvents 1.0
structured form (docs/events.md lists the types and their `data`).

Events never hold up a send or change what it does: a service collects its events
and they are published after its transaction commits, in one pipelined round trip
(nothing is published for a send that rolls back). A publish that fails is logged
and counted (`sbm_events_lost`), never raised. An event's `id` is derived from what
it is about, so an event published twice (a task run again) carries the same `id`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cache_api.models import Cache
from topics.publish_sync import topic_publish_texts
from topics.store import TopicRef

from . import metrics

logger = logging.getLogger(__name__)

SOURCE = "/api/v1/subscriptions"
NAMESPACE = uuid.UUID("6f1c3f0e-5b7a-4c55-9d1e-3a8f2b9e7c41")  # of the events' ids (uuid5)

SUBSCRIPTION_CREATED = "org.sbm.subscription.created"
MESSAGE_SENT = "org.sbm.message.sent"
MESSAGE_FAILED = "org.sbm.message.failed"
SUBSCRIPTION_COMPLETED = "org.sbm.subscription.completed"
SUBSCRIPTION_MOVED = "org.sbm.subscription.moved"
SEND_REQUEUED = "org.sbm.send.requeued"
MESSAGE_RESENT = "org.sbm.message.resent"

_topic: dict[str, tuple[float, TopicRef]] = {}  # MESSAGING_EVENTS_TOPIC -> (monotonic time resolved, topic)


def event(kind: str, *, subject, key: str, data: dict, at: datetime | None = None) -> dict:
    """A CloudEvent of `kind` about subscription `subject`; `key` tells it from the others of its kind."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid5(NAMESPACE, f"{kind}:{key}")),
        "source": SOURCE,
        "type": kind,
        "subject": str(subject),
        "time": (at or timezone.now()).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }


def _about(subscription) -> dict:
    """What every event about a subscription says of it."""
    return {
        "subscription": str(subscription.pk),
        "identity": subscription.identity,
        "messageset": subscription.messageset_id,
        "lang": subscription.lang,
    }


def subscription_created(subscription, *, via: str) -> dict:
    """`via`: api, hub, admin or next_set."""
    return event(
        SUBSCRIPTION_CREATED,
        subject=subscription.pk,
        key=str(subscription.pk),
        at=subscription.created_at,
        data={
            **_about(subscription),
            "schedule": subscription.schedule_id,
            "next_sequence_number": subscription.next_sequence_number,
            "via": via,
        },
    )


def message_sent(subscription, delivery, *, resend: bool, at: datetime) -> dict:
    """A message the sender accepted (or a dry run's); keyed like its Idempotency-Key."""
    return event(
        MESSAGE_RESENT if resend else MESSAGE_SENT,
        subject=subscription.pk,
        key=delivery.idempotency_key,
        at=at,
        data={
            **_about(subscription),
            "sequence_number": delivery.sequence_number,
            "outcome": delivery.outcome,
            "sender_status": delivery.sender_status,
            "outbound": delivery.outbound_id,
        },
    )


def message_failed(subscription, *, sequence_number: int, reason: str, kind: str, task_id, at: datetime) -> dict:
    """A message not sent; one per send task that tried it (a task run again keeps its id)."""
    return event(
        MESSAGE_FAILED,
        subject=subscription.pk,
        key=f"{subscription.pk}:{sequence_number}:{task_id}",
        at=at,
        data={
            **_about(subscription),
            "sequence_number": sequence_number,
            "kind": kind,
            "reason": reason,
        },
    )


def subscription_completed(subscription, *, at: datetime) -> dict:
    return event(
        SUBSCRIPTION_COMPLETED,
        subject=subscription.pk,
        key=str(subscription.pk),
        at=at,
        data={
            "subscription": str(subscription.pk),
            "identity": subscription.identity,
            "messageset": subscription.messageset_id,
        },
    )


def subscription_moved(subscription, follower, *, at: datetime) -> dict:
    """A completed subscription's identity moved on to its set's next set (`follower`)."""
    return event(
        SUBSCRIPTION_MOVED,
        subject=subscription.pk,
        key=str(subscription.pk),
        at=at,
        data={
            "subscription": str(subscription.pk),
            "identity": subscription.identity,
            "from_messageset": subscription.messageset_id,
            "to_messageset": follower.messageset_id,
            "next_subscription": str(follower.pk),
        },
    )


def send_requeued(failure, *, at: datetime) -> dict:
    """A recorded failure sent again."""
    return event(
        SEND_REQUEUED,
        subject=failure.subscription_id,
        key=str(failure.pk),
        at=at,
        data={
            "subscription": str(failure.subscription_id),
            "failure": failure.pk,
            "sequence_number": failure.sequence_number,
        },
    )


def enabled() -> bool:
    return settings.MESSAGING_EVENTS_TOPIC is not None


def publish_on_commit(events: list[dict]) -> None:
    """Publish the events once the current transaction commits (at once outside one)."""
    if events and enabled():
        transaction.on_commit(lambda: publish(events))


def events_topic() -> TopicRef | None:
    """MESSAGING_EVENTS_TOPIC's topic; None while its cache does not exist. Trusted for CACHE_LOOKUP_SECONDS."""
    name = settings.MESSAGING_EVENTS_TOPIC
    known = _topic.get(name)
    if known is not None and time.monotonic() - known[0] < settings.CACHE_LOOKUP_SECONDS:
        return known[1]
    cache_name, topic_name = name.split("/")
    cache_id = Cache.objects.filter(name=cache_name).values_list("pk", flat=True).first()
    if cache_id is None:
        return None
    topic = TopicRef(cache_id=cache_id, cache_name=cache_name, name=topic_name)
    _topic[name] = (time.monotonic(), topic)
    return topic


def forget_events_topic() -> None:
    _topic.clear()


def publish(events: list[dict]) -> None:
    """Publish the events in order; a failure is logged and counted, never raised."""
    try:
        topic = events_topic()
        if topic is None:
            logger.warning("%s events lost: no cache for %s.", len(events), settings.MESSAGING_EVENTS_TOPIC)
            metrics.record("sbm_events_lost", len(events), reason="no_cache")
            return
        topic_publish_texts(topic=topic, texts=[json.dumps(item, separators=(",", ":")) for item in events])
    except Exception as error:  # whatever it is: the send it follows has committed
        logger.warning("%s events lost: %s: %s", len(events), type(error).__name__, error)
        metrics.record("sbm_events_lost", len(events), reason="publish_failed")
        return
    metrics.record("sbm_events_published", len(events))
