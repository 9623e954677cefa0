"""The relay: hands each webhook's next topic message to the jobs engine, one at a time.

Publishing writes nothing to the database; the relay reads the topics instead. It
claims webhooks with nothing in flight (`SELECT ... FOR UPDATE SKIP LOCKED`, so any
number of scheduler processes may run it), reads the message after each one's cursor
from the topic's stream, and in the same transaction creates its delivery job and
moves the cursor. The jobs engine then sends it, signed with the webhook's secret,
retried on its schedule; the next message waits until that job succeeded or failed
(dead-lettered), so a webhook's messages arrive in sequence order, each at least once.

Messages that expired before their turn, or a topic that restarted its numbering
(a new page), are skipped over and counted (`discontinuities`, `skipped`).
"""

from __future__ import annotations

import base64
import json
import logging
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import Q

from cache_api.keys import topic_key, topic_meta_key
from core.redis import REDIS_ERRORS, get_data_redis
from jobs import clock
from jobs.models import ACTIVE_STATES, HttpMethod, Job, JobState

from .models import TopicWebhook, WebhookDelivery

logger = logging.getLogger(__name__)

ERROR_PAUSE = 1.0  # seconds after the database or Redis failed


def _next_entry(webhook: TopicWebhook) -> tuple[int, int, dict] | None:
    """(page, sequence number, fields) of the first message after the cursor, moving the cursor
    over what cannot be delivered any more; None when there is nothing new."""
    client = get_data_redis()
    page, _ = client.hmget(topic_meta_key(webhook.cache_id, webhook.topic), "page", "seq")
    if page is None:
        return None
    page = int(page)
    if webhook.page != page:
        if webhook.page is not None:  # the topic restarted: what was left of the old page is gone
            webhook.discontinuities += 1
        webhook.page, webhook.last_seq = page, 0
    entries = client.xrange(topic_key(webhook.cache_id, webhook.topic), f"{webhook.last_seq + 1}-0", "+", count=1)
    if not entries:
        return None
    entry_id, fields = entries[0]
    seq = int(entry_id.split(b"-", 1)[0])
    if seq > webhook.last_seq + 1:
        webhook.discontinuities += 1
        webhook.skipped += seq - webhook.last_seq - 1
    return page, seq, fields


def delivery_body(webhook: TopicWebhook, page: int, seq: int, fields: dict) -> str:
    """The JSON the destination receives for one message."""
    body = {
        "cache": webhook.cache.name,
        "topic": webhook.topic,
        "topic_sequence_number": seq,
        "sequence_page": page,
        "publish_timestamp": int(fields[b"t"]),
    }
    if fields[b"k"] == b"b":
        body["binary"] = base64.b64encode(fields[b"v"]).decode()
    else:
        body["text"] = fields[b"v"].decode("utf-8", errors="replace")
    return json.dumps(body, separators=(",", ":"))


def _hand_over(webhook: TopicWebhook) -> bool:
    """Create the delivery of the webhook's next message, if there is one; whether one was made."""
    before = (webhook.page, webhook.last_seq)
    found = _next_entry(webhook)
    if found is None:
        if (webhook.page, webhook.last_seq) != before:
            webhook.save(update_fields=["page", "last_seq", "discontinuities", "skipped", "updated_at"])
        return False
    page, seq, fields = found
    now = clock.now()
    job = Job.objects.create(
        user_id=webhook.user_id,
        method=HttpMethod.POST,
        uri=webhook.destination,
        at=now,
        headers={"Content-Type": "application/json"},
        body=delivery_body(webhook, page, seq, fields),
        timeout=settings.JOBS_DEFAULT_TIMEOUT,
        state=JobState.SCHEDULED,
        next_attempt_at=now,
        keyring=webhook.keyring,
    )
    WebhookDelivery.objects.create(webhook=webhook, job=job, page=page, seq=seq)
    webhook.last_seq, webhook.pending = seq, job
    webhook.save(update_fields=["page", "last_seq", "pending", "discontinuities", "skipped", "updated_at"])
    return True


def _relay_batch(*, after: int, limit: int) -> tuple[int, int | None]:
    """Claim up to `limit` webhooks past id `after` with nothing in flight, and hand each its next
    message; (how many were handed one, the last id claimed or None when none was)."""
    with transaction.atomic():
        idle = list(
            TopicWebhook.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(Q(pending__isnull=True) | ~Q(pending__state__in=ACTIVE_STATES), id__gt=after)
            .select_related("cache")
            .order_by("id")[:limit]
        )
        return sum(_hand_over(webhook) for webhook in idle), (idle[-1].pk if idle else None)


def relay_once(*, limit: int | None = None) -> int:
    """One pass over every webhook with nothing in flight, a batch per transaction; how many were handed a message."""
    limit = limit or settings.WEBHOOKS_RELAY_BATCH
    handed, after = 0, 0
    while after is not None:
        count, after = _relay_batch(after=after, limit=limit)
        handed += count
    return handed


def run_relay(stop: threading.Event) -> None:
    """Relay until `stop` is set: a pass, then WEBHOOKS_RELAY_INTERVAL_MS of rest unless it handed anything on."""
    interval = settings.WEBHOOKS_RELAY_INTERVAL_MS / 1000
    logger.info("Webhook relay started (every %g s).", interval)
    try:
        while not stop.is_set():
            try:
                handed = relay_once()
            except (DatabaseError, *REDIS_ERRORS) as error:
                logger.warning("Webhook relay: %s, retrying in %g s", error, ERROR_PAUSE)
                close_old_connections()
                connection.close()
                stop.wait(ERROR_PAUSE)
                continue
            if not handed:
                stop.wait(interval)
    finally:
        connection.close()
        logger.info("Webhook relay stopped.")


def start_relay_thread() -> tuple[threading.Thread, threading.Event]:
    """Run the relay in a daemon thread of this process; set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run_relay, args=(stop,), name="webhook-relay", daemon=True)
    thread.start()
    return thread, stop
