"""Topic webhooks: a topic's messages POSTed to a URL, one delivery job at a time, in order."""

from django.conf import settings
from django.db import models

from cache_api.models import Cache
from jobs.models import Job


class TopicWebhook(models.Model):
    """A destination that gets every message published to one topic of a cache.

    The cursor (`page`, `last_seq`) is the last message handed to a delivery job; `pending`
    is that job while it may still be sent, so the next message waits for it (in order).
    """

    cache = models.ForeignKey(Cache, on_delete=models.CASCADE, related_name="webhooks")
    name = models.CharField(max_length=128)
    topic = models.CharField(max_length=128)
    destination = models.TextField(help_text="The http or https URL each message is POSTed to.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="topic_webhooks",
        help_text="Who created it: its delivery jobs are theirs.",
    )
    page = models.BigIntegerField(null=True, blank=True, help_text="The topic's sequence page the cursor is in.")
    last_seq = models.BigIntegerField(default=0, help_text="The last sequence number handed to a delivery.")
    pending = models.ForeignKey(
        Job,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The delivery in flight; the next message waits until it succeeded or failed.",
    )
    discontinuities = models.PositiveIntegerField(
        default=0, help_text="Times messages were skipped over: expired before delivery, or the topic restarted."
    )
    skipped = models.PositiveBigIntegerField(default=0, help_text="Messages known to be skipped over.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["cache", "name"]
        constraints = [models.UniqueConstraint(fields=["cache", "name"], name="webhooks_one_name_per_cache")]

    def __str__(self) -> str:
        return f"{self.cache.name}/{self.name} ({self.topic})"

    @property
    def keyring(self) -> str:
        """The jobs face's keyring whose secrets sign this webhook's deliveries."""
        return f"webhook:{self.pk}"


class WebhookDelivery(models.Model):
    """One message handed to the jobs engine: its job holds the attempts."""

    webhook = models.ForeignKey(TopicWebhook, on_delete=models.CASCADE, related_name="deliveries")
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="webhook_delivery")
    page = models.BigIntegerField()
    seq = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"message {self.page}:{self.seq} of {self.webhook_id}"
