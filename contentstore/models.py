from datetime import datetime
from pathlib import PurePath
from zoneinfo import ZoneInfo

from croniter import croniter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from . import validators

CRON_HELP = "A cron field such as 0, */15, 1-5 or mon-fri, read in SCHEDULE_TIME_ZONE."


class Schedule(models.Model):
    """When the subscriptions on it are sent their next message: a cron expression.

    Each schedule owns a periodic task of the scheduler that fires it; the
    services keep the two in step.
    """

    minute = models.CharField(max_length=64, default="*", validators=[validators.validate_minute], help_text=CRON_HELP)
    hour = models.CharField(max_length=64, default="*", validators=[validators.validate_hour], help_text=CRON_HELP)
    day_of_week = models.CharField(
        max_length=64, default="*", validators=[validators.validate_day_of_week], help_text=CRON_HELP
    )
    day_of_month = models.CharField(
        max_length=64, default="*", validators=[validators.validate_day_of_month], help_text=CRON_HELP
    )
    month_of_year = models.CharField(
        max_length=64, default="*", validators=[validators.validate_month_of_year], help_text=CRON_HELP
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="content_schedule",
        help_text="The scheduler's task that fires this schedule.",
    )

    class Meta:
        ordering = ["month_of_year", "day_of_month", "day_of_week", "hour", "minute", "id"]

    def __str__(self) -> str:
        return f"{self.cron_string} (#{self.pk})"

    @property
    def cron_fields(self) -> dict[str, str]:
        """The five fields as the scheduler reads them, in cron string order."""
        return {name: validators.cron_field(getattr(self, name)) for name in validators.CRON_FIELDS}

    @property
    def cron_string(self) -> str:
        """`minute hour day_of_month month_of_year day_of_week`."""
        return " ".join(self.cron_fields.values())

    @staticmethod
    def time_zone() -> ZoneInfo:
        """The zone every schedule's cron fields are read in (SCHEDULE_TIME_ZONE)."""
        return ZoneInfo(settings.SCHEDULE_TIME_ZONE)

    def run_times(self, *, count: int, after: datetime | None = None, until: datetime | None = None) -> list[datetime]:
        """The next `count` times this schedule fires after `after` (default now), in its zone;
        fewer when `until` is given and they pass it."""
        times = croniter(self.cron_string, (after or timezone.now()).astimezone(self.time_zone()))
        found: list[datetime] = []
        while len(found) < count:
            moment = times.get_next(datetime)
            if until is not None and moment > until:
                break
            found.append(moment)
        return found

    def period_start(self, at: datetime) -> datetime:
        """The latest time this schedule fires at or before `at`: the start of the period `at` falls in."""
        return croniter(self.cron_string, at.astimezone(self.time_zone())).get_prev(datetime)


class MessageSet(models.Model):
    """An ordered series of messages, in one or more languages, sent one per schedule fire."""

    CONTENT_TYPES = [("text", "Text"), ("audio", "Audio")]

    short_name = models.CharField(max_length=100, unique=True)
    label = models.CharField(max_length=100, blank=True, default="", help_text="A name people read.")
    notes = models.TextField(null=True, blank=True)  # noqa: DJ001 - the API has always said null
    channel = models.CharField(  # noqa: DJ001 - the API has always said null
        max_length=64,
        null=True,
        blank=True,
        help_text="The message sender's channel; on a WhatsApp channel text has stricter rules.",
    )
    next_set = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="previous_sets",
        help_text="The set a subscription moves on to when it completes this one.",
    )
    default_schedule = models.ForeignKey(Schedule, on_delete=models.PROTECT, related_name="message_sets")
    content_type = models.CharField(max_length=20, choices=CONTENT_TYPES, default="text")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["short_name"]

    def __str__(self) -> str:
        return self.short_name


def binary_content_file_name(instance: "BinaryContent", filename: str) -> str:
    """Uploads are stored as their upload time plus their original extension."""
    return f"{timezone.now():%Y%m%d%H%M%S%f}{PurePath(filename).suffix}"


class BinaryContent(models.Model):
    """A file (audio or image) that messages refer to."""

    content = models.FileField(
        upload_to=binary_content_file_name,
        max_length=255,
        validators=[validators.validate_upload_size, validators.validate_upload_type],
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "binary content"
        verbose_name_plural = "binary content"

    def __str__(self) -> str:
        return self.file_name

    @property
    def file_name(self) -> str:
        return PurePath(self.content.name or "").name


def validate_json_object(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError("Must be a JSON object.", code="not_an_object")


class Message(models.Model):
    """One message of a set, in one language, at one position."""

    messageset = models.ForeignKey(MessageSet, on_delete=models.CASCADE, related_name="messages")
    sequence_number = models.IntegerField(validators=[MinValueValidator(1)])
    lang = models.CharField(max_length=6)
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_json_object])
    text_content = models.TextField(  # noqa: DJ001 - the API has always said null
        null=True, blank=True, validators=[validators.validate_plain_punctuation]
    )
    binary_content = models.ForeignKey(
        BinaryContent, null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sequence_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["messageset", "sequence_number", "lang"], name="contentstore_message_unique_position"
            )
        ]

    def __str__(self) -> str:
        return f"Message {self.sequence_number} in {self.lang} of {self.messageset}"

    def clean(self) -> None:
        """The rules on text that depend on other fields (the set's channel, the file)."""
        try:
            channel = self.messageset.channel
        except Message.messageset.RelatedObjectDoesNotExist:
            channel = None
        errors = validators.message_text_errors(
            channel=channel,
            text_content=self.text_content,
            has_file=self.binary_content_id is not None,
        )
        if errors:
            raise ValidationError({"text_content": errors})
