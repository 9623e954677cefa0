"""Setting, removing and re-keying topic webhooks: the rules the API and admin share."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.models import User
from cache_api.keys import topic_meta_key
from cache_api.models import Cache
from core.redis import get_data_redis
from jobs import signing
from jobs.models import Job, SigningSecret

from .models import TopicWebhook


class WebhookLimitReached(Exception):
    """The cache holds WEBHOOKS_MAX_PER_CACHE webhooks already."""


def topic_position(*, cache: Cache, topic: str) -> tuple[int | None, int]:
    """The topic's page and last sequence number now ((None, 0) when nothing is kept)."""
    page, last = get_data_redis().hmget(topic_meta_key(cache.pk, topic), "page", "seq")
    return (int(page), int(last)) if page is not None else (None, 0)


@transaction.atomic
def webhook_set(
    *, cache: Cache, name: str, topic: str, destination: str, user: User
) -> tuple[TopicWebhook, str | None]:
    """Create the webhook (and its secret, returned to be shown once) or replace its topic and
    destination (secret None: it keeps its own, and its creator, whose jobs its deliveries are).

    A new webhook, or one moved to another topic, gets the messages published from now on.
    A delivery already handed to the jobs engine goes where it was meant to go.
    """
    webhook = TopicWebhook.objects.select_for_update().filter(cache=cache, name=name).first()
    if webhook is None:
        Cache.objects.select_for_update().filter(pk=cache.pk).first()  # counted one creation at a time
        if TopicWebhook.objects.filter(cache=cache).count() >= settings.WEBHOOKS_MAX_PER_CACHE:
            raise WebhookLimitReached(f"Cache {cache.name!r} has {settings.WEBHOOKS_MAX_PER_CACHE} webhooks already.")
        webhook = TopicWebhook(cache=cache, name=name, topic="", user=user)
    moved = webhook.topic != topic
    webhook.topic, webhook.destination = topic, destination
    if moved:
        webhook.page, webhook.last_seq = topic_position(cache=cache, topic=topic)
    created = webhook.pk is None
    webhook.save()
    if not created:
        return webhook, None
    _, secret = signing.signing_secret_rotate(user=user, overlap=0, keyring=webhook.keyring)
    return webhook, secret


def webhook_rotate_secret(*, webhook: TopicWebhook, overlap: int) -> tuple[SigningSecret, str]:
    """A new secret, shown now; the previous one signs too for `overlap` seconds."""
    return signing.signing_secret_rotate(user=webhook.user, overlap=overlap, keyring=webhook.keyring)


@transaction.atomic
def webhook_delete(*, webhook: TopicWebhook) -> None:
    """Remove the webhook with its deliveries (a delivery not yet sent never is) and its secrets."""
    Job.objects.filter(webhook_delivery__webhook=webhook).delete()
    SigningSecret.objects.filter(keyring=webhook.keyring).delete()
    webhook.delete()
