import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from contentstore.models import Message, MessageSet, Schedule


class ProcessStatus(models.IntegerChoices):
    READY = 0, "Ready"
    IN_PROCESS = 1, "In process (legacy)"
    COMPLETED = 2, "Completed"
    NO_ADDRESS = -1, "No address"
    ERROR = -2, "Error"
    INVALID = 5, "Invalid"


def validate_metadata(value) -> None:
    if value is not None and not isinstance(value, dict):
        raise ValidationError("Must be a JSON object or null.", code="not_an_object")


class SubscriptionQuerySet(models.QuerySet):
    def ready(self):
        """The subscriptions a send may go to: active, not completed, process_status 0."""
        return self.filter(active=True, completed=False, process_status=ProcessStatus.READY)


class Subscription(models.Model):
    """An identity's place in a message set: which message it is sent next, and when (its schedule)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    identity = models.CharField(max_length=36, db_index=True)
    version = models.IntegerField(default=1)
    messageset = models.ForeignKey(MessageSet, on_delete=models.PROTECT, related_name="subscriptions")
    initial_sequence_number = models.IntegerField(default=1, validators=[MinValueValidator(1)])
    next_sequence_number = models.IntegerField(default=1, validators=[MinValueValidator(1)])
    lang = models.CharField(max_length=6)
    active = models.BooleanField(default=True)
    completed = models.BooleanField(default=False)
    schedule = models.ForeignKey(Schedule, on_delete=models.PROTECT, related_name="subscriptions")
    process_status = models.IntegerField(choices=ProcessStatus.choices, default=ProcessStatus.READY)
    metadata = models.JSONField(null=True, blank=True, validators=[validate_metadata])
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="subscriptions_created",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="subscriptions_updated",
    )
    last_run = models.ForeignKey(
        "SendRun",
        null=True,
        blank=True,
        editable=False,
        db_index=False,  # never looked up by; unindexed, a send's update of the row can stay on its page (HOT)
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The schedule send that last handled this subscription: a send handles each subscription once.",
    )

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["schedule", "id"],
                condition=models.Q(active=True, completed=False, process_status=0),
                name="subscription_ready_by_schedule",
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)

    @property
    def is_ready(self) -> bool:
        return self.active and not self.completed and self.process_status == ProcessStatus.READY


class SendRun(models.Model):
    """One send of a schedule, for one of its cron periods: each ready subscription on the
    schedule is sent its next message once, however often the schedule is fired in the period."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="send_runs")
    period_start = models.DateTimeField(help_text="The schedule's run time this send is for.")
    started_at = models.DateTimeField(default=timezone.now)
    walked_at = models.DateTimeField(null=True, blank=True, help_text="When every batch of the send was queued.")
    finished_at = models.DateTimeField(null=True, blank=True)
    abandoned = models.BooleanField(
        default=False, help_text="Closed unfinished when the next period's send started; its leftovers go with that."
    )

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "period_start"], name="subscriptions_sendrun_one_per_period")
        ]
        indexes = [
            models.Index(fields=["schedule"], condition=models.Q(finished_at__isnull=True), name="sendrun_open"),
        ]

    def __str__(self) -> str:
        return f"Send of schedule {self.schedule_id} for {self.period_start:%Y-%m-%d %H:%M %Z}"


class SendBatch(models.Model):
    """A batch of a schedule send: the subscription ids one send task was given."""

    run = models.ForeignKey(SendRun, on_delete=models.CASCADE, related_name="batches")
    size = models.IntegerField()
    queued_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)
    sent = models.IntegerField(default=0, help_text="Messages the message sender accepted (or dry runs).")
    failed = models.IntegerField(default=0, help_text="Sends that failed and were recorded.")
    skipped = models.IntegerField(default=0, help_text="Subscriptions not sent: missing message, no address.")

    class Meta:
        verbose_name_plural = "send batches"
        indexes = [
            models.Index(fields=["run"], condition=models.Q(done_at__isnull=True), name="sendbatch_pending"),
        ]

    def __str__(self) -> str:
        return f"Batch {self.pk} of {self.run}"


class SubscriptionSendFailure(models.Model):
    """A send that did not happen: why, and the position it was for (requeue sends it again)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="send_failures")
    task_id = models.UUIDField()
    initiated_at = models.DateTimeField()
    reason = models.TextField()
    sequence_number = models.IntegerField(null=True, blank=True, help_text="The message the send was for.")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return str(self.pk)


class ResendRequest(models.Model):
    """A request to send a subscription's current message again."""

    received_at = models.DateTimeField(auto_now_add=True)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="resend_requests")
    outbound = models.UUIDField(null=True, blank=True, help_text="The message sender's id for the resent message.")
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="resend_requests"
    )

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.pk}: {self.received_at}"


class EstimatedSend(models.Model):
    """How many messages of a set are expected to be sent on a day."""

    send_date = models.DateField()
    messageset = models.ForeignKey(MessageSet, on_delete=models.CASCADE, related_name="estimates")
    estimate_subscriptions = models.IntegerField()
    estimate_identities = models.IntegerField()

    class Meta:
        ordering = ["-send_date", "messageset_id"]
        constraints = [
            models.UniqueConstraint(fields=["send_date", "messageset"], name="subscriptions_estimatedsend_unique_day")
        ]

    def __str__(self) -> str:
        return f"{self.send_date},{self.messageset_id}:{self.estimate_subscriptions}/{self.estimate_identities}"


class BehindSubscription(models.Model):
    """A subscription found behind where its schedule says it should be."""

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="+", help_text="The subscription that is behind."
    )
    messages_behind = models.IntegerField(help_text="How many messages the subscription is behind by.")
    current_messageset = models.ForeignKey(
        MessageSet, on_delete=models.CASCADE, related_name="+", help_text="The message set the subscription is on."
    )
    current_sequence_number = models.IntegerField(help_text="The subscription's next sequence number.")
    expected_messageset = models.ForeignKey(
        MessageSet, on_delete=models.CASCADE, related_name="+", help_text="The message set it should be on."
    )
    expected_sequence_number = models.IntegerField(help_text="The next sequence number it should be at.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("can_find_behind_subscriptions", "Can find behind subscriptions")]

    def __str__(self) -> str:
        return f"{self.subscription_id} behind by {self.messages_behind}"
