"""The jobs API's serializers: a job's parameters in, a job (with its attempts and callbacks) out.

The rules a value must follow live in `values`; the fields here read the forms a
client may send (a list or comma-separated text, an object or JSON text) and apply
them. The envelopes the responses come in are described in `schema`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from . import values
from .models import LISTED_KINDS, Attempt, HttpMethod, Job, JobQueue
from .parsers import read_json
from .values import AT_HELP, CRON_HELP

T = TypeVar("T")


def _checked(check: Callable[[T], T], value: T) -> T:
    """`check(value)`, its InvalidValue as the field's validation error."""
    try:
        return check(value)
    except values.InvalidValue as error:
        raise serializers.ValidationError(str(error)) from None


class UriField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=True, **kwargs)

    def to_internal_value(self, data) -> str:
        text = super().to_internal_value(data)
        return _checked(values.checked_uri, text) if text else ""


@extend_schema_field(OpenApiTypes.STR)
class JobTimeField(serializers.Field):
    """A time: read in the forms `values.parse_at` takes, written as `values.format_time` writes it."""

    default_error_messages = {"invalid": "Is not a time: {value!r}. " + AT_HELP}

    def to_internal_value(self, data) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        try:
            return values.parse_at(data)
        except values.InvalidValue as error:
            raise serializers.ValidationError(str(error)) from None
        except ValueError:
            self.fail("invalid", value=data)

    def to_representation(self, value: datetime) -> str:
        return values.format_time(value)


@extend_schema_field({"type": "string", "nullable": True})
class OptionalJobTimeField(JobTimeField):
    """A time that may be missing (null)."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)


class MethodField(serializers.CharField):
    def to_internal_value(self, data) -> str:
        method = super().to_internal_value(data).upper()
        if method not in HttpMethod.values:
            raise serializers.ValidationError(f"Must be one of {', '.join(HttpMethod.values)}, not {data!r}.")
        return method


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class HeadersField(serializers.Field):
    """Header name to value; an object, or the same as a JSON string (for form fields)."""

    def to_internal_value(self, data) -> dict[str, str]:
        if isinstance(data, str):
            if not data.strip():
                return {}
            try:
                data = read_json(data)
            except ValueError:  # not JSON, or JSON that cannot be held (nested too deeply, ...)
                data = None
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                'Must be an object of header names to values, e.g. {"Content-Type": "application/json"}, '
                "or form fields job[headers][Content-Type]=application/json."
            )
        return _checked(values.request_headers, data)

    def to_representation(self, value):
        return value


@extend_schema_field({"type": "array", "items": {"type": "integer"}})
class RetryDelaysField(serializers.Field):
    """Retry delays in seconds after the first attempt: a list, or comma-separated."""

    def to_internal_value(self, data) -> list[int]:
        if isinstance(data, str):
            data = [part for part in data.split(",") if part.strip()]
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a list of seconds, e.g. [10, 120, 900] or 10,120,900.")
        try:
            delays = [int(str(item).strip()) for item in data]
        except ValueError:
            raise serializers.ValidationError(f"Must be whole seconds, e.g. 10,120,900, not {data!r}.") from None
        return _checked(values.retry_delays, delays)

    def to_representation(self, value):
        return value


class QueueNameField(serializers.CharField):
    """The name of one of the owner's queues; empty (or null) for none."""

    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, allow_null=True, **kwargs)

    def to_internal_value(self, data) -> str:
        name = super().to_internal_value(data)
        return _checked(values.queue_name, name) if name else ""


class ShownUriField(serializers.CharField):
    """A URI as the API shows it: credentials a row may hold from before they were refused are masked."""

    def to_representation(self, value) -> str:
        return values.without_userinfo(value)


class JobInputSerializer(serializers.Serializer):
    """A job's parameters; for an update, only those given change."""

    uri = UriField(error_messages={"required": "Give the URL to call, e.g. job[uri]=https://example.org/hook."})
    at = JobTimeField(required=False, help_text="When to send it (now when not given). " + AT_HELP)
    method = MethodField(required=False, help_text="GET (the default), POST, PUT, PATCH, DELETE, HEAD or OPTIONS.")
    callback_uri = UriField(required=False, allow_blank=True, help_text="Called with a POST after a 2xx.")
    failure_callback_uri = UriField(
        required=False, allow_blank=True, help_text="Called with a POST when the last retry has failed."
    )
    headers = HeadersField(required=False, help_text="Headers to send.")
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, help_text="Body to send.")
    timeout = serializers.IntegerField(required=False, help_text="Seconds each attempt may take.")
    retry_schedule = RetryDelaysField(required=False, help_text="Seconds after the first attempt to retry at.")
    cron = serializers.CharField(
        required=False,
        help_text="Makes it a recurring job, sent at every run time of this cron expression (instead of `at`). "
        + CRON_HELP,
    )
    time_zone = serializers.CharField(
        required=False, help_text="The IANA zone a recurring job's cron is read in (JOBS_TIME_ZONE when not given)."
    )
    paused = serializers.BooleanField(
        required=False,
        help_text="A recurring job's pause: true stops its firings, false resumes them.",
        error_messages={"invalid": "Must be true or false."},
    )

    def validate_cron(self, value: str) -> str:
        return _checked(values.cron_expression, value)

    def validate_time_zone(self, value: str) -> str:
        return _checked(values.time_zone_name, value)

    deduplication_id = serializers.CharField(
        required=False,
        error_messages={"blank": "Must not be empty: give an id of your own, e.g. order-1234-reminder."},
        help_text=(
            "Creates only: another create of yours with this id within JOBS_DEDUPLICATION_SECONDS creates "
            "nothing and answers this job. 1 to 128 visible ASCII characters (also the Idempotency-Key header)."
        ),
    )
    queue = QueueNameField(
        required=False,
        help_text="The name of one of your queues (created with PUT /api/v1/job-queues/{name}) whose flow control "
        "the job follows; empty for none.",
    )

    def validate_body(self, value: str) -> str:
        return _checked(values.request_body, value)

    def validate_timeout(self, value: int) -> int:
        return _checked(values.attempt_timeout, value)

    def validate_deduplication_id(self, value: str) -> str:
        return _checked(values.deduplication_id, value)


class JobAttemptSerializer(serializers.ModelSerializer):
    started_at = JobTimeField(read_only=True)

    class Meta:
        model = Attempt
        fields = [
            "number",
            "outcome",
            "started_at",
            "duration_ms",
            "status_code",
            "http_version",
            "response_headers",
            "body_excerpt",
            "error",
        ]


class JobSerializer(serializers.ModelSerializer):
    """A job as the API shows it: the reference's id, uri, method, at, and its state."""

    id = serializers.CharField()
    uri = ShownUriField()
    at = JobTimeField(read_only=True)
    next_attempt_at = OptionalJobTimeField(read_only=True)
    callback_uri = serializers.SerializerMethodField()
    failure_callback_uri = serializers.SerializerMethodField()
    retry_schedule = serializers.ListField(child=serializers.IntegerField(), source="retry_delays", read_only=True)
    kind = serializers.ChoiceField(
        choices=LISTED_KINDS,
        read_only=True,
        help_text="`recurring`: a recurring job (never sent itself); `request`: a one-off job, or a firing.",
    )
    recurring_job = serializers.CharField(
        source="recurring_job_id",
        allow_null=True,
        read_only=True,
        help_text="For a firing: the id of the recurring job that made it; null otherwise.",
    )
    cron = serializers.SerializerMethodField(help_text="A recurring job's cron expression; null otherwise.")
    time_zone = serializers.SerializerMethodField(help_text="The zone a recurring job's cron is read in.")
    paused = serializers.BooleanField(read_only=True, help_text="Whether a recurring job is paused.")
    next_run_at = OptionalJobTimeField(
        read_only=True, help_text="A recurring job's next run time; null while paused, and for other jobs."
    )
    deduplication_id = serializers.SerializerMethodField(help_text="The id it was created with to happen once.")
    queue = serializers.CharField(source="queue.name", allow_null=True, read_only=True, help_text="Its queue, if any.")

    class Meta:
        model = Job
        fields = [
            "id",
            "uri",
            "method",
            "at",
            "state",
            "next_attempt_at",
            "attempt_count",
            "callback_uri",
            "failure_callback_uri",
            "timeout",
            "retry_schedule",
            "kind",
            "recurring_job",
            "cron",
            "time_zone",
            "paused",
            "next_run_at",
            "deduplication_id",
            "queue",
        ]

    def get_cron(self, job: Job) -> str | None:
        return job.cron or None

    def get_time_zone(self, job: Job) -> str | None:
        return job.time_zone or None

    def get_callback_uri(self, job: Job) -> str | None:
        return values.without_userinfo(job.callback_uri) or None

    def get_failure_callback_uri(self, job: Job) -> str | None:
        return values.without_userinfo(job.failure_callback_uri) or None

    def get_deduplication_id(self, job: Job) -> str | None:
        return job.deduplication_id or None


class JobCallbackSerializer(serializers.ModelSerializer):
    id = serializers.CharField()
    uri = ShownUriField()
    at = JobTimeField(read_only=True)
    next_attempt_at = OptionalJobTimeField(read_only=True)
    attempts = JobAttemptSerializer(many=True)

    class Meta:
        model = Job
        fields = ["id", "kind", "uri", "at", "state", "next_attempt_at", "body", "attempts"]


class JobDetailSerializer(JobSerializer):
    """A job with what it sends, every attempt and its callbacks."""

    attempts = JobAttemptSerializer(many=True)
    callbacks = JobCallbackSerializer(many=True)
    created_at = JobTimeField(read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "headers", "body", "created_at", "attempts", "callbacks"]


# The most a queue's parallelism and rate may be set to (beyond, leave it unbounded: null).
QUEUE_SETTING_MAX = 1_000_000


class JobQueueInputSerializer(serializers.Serializer):
    """A queue's settings; those not given keep their value (a new queue's: unbounded, not paused)."""

    parallelism = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=QUEUE_SETTING_MAX,
        help_text="Most of its jobs in flight at once; null: no limit.",
    )
    rate_per_second = serializers.FloatField(
        required=False,
        allow_null=True,
        max_value=QUEUE_SETTING_MAX,
        help_text="Most of its jobs started a second, on average (bursts of max(1, rate)); null: no limit.",
    )
    paused = serializers.BooleanField(required=False, help_text="While true, its jobs wait.")

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown queue setting; a queue takes {', '.join(self.fields)}."] for name in unknown}
                )
        return super().to_internal_value(data)

    def validate_rate_per_second(self, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise serializers.ValidationError("Must be above 0; null for no limit (pause the queue to stop it).")
        return value


class JobQueueSerializer(serializers.ModelSerializer):
    """A queue with its settings and what it holds now."""

    burst = serializers.FloatField(read_only=True, allow_null=True, help_text="Jobs the rate lets start at once.")
    depth = serializers.IntegerField(read_only=True, help_text="Its jobs scheduled.")
    in_flight = serializers.IntegerField(read_only=True, help_text="Its jobs running (claimed, not yet recorded).")
    oldest_due_lateness_ms = serializers.SerializerMethodField(
        help_text="How late its oldest due job is, in ms; null when none is due."
    )
    created_at = JobTimeField(read_only=True)
    updated_at = JobTimeField(read_only=True)

    class Meta:
        model = JobQueue
        fields = [
            "name",
            "parallelism",
            "rate_per_second",
            "burst",
            "paused",
            "depth",
            "in_flight",
            "oldest_due_lateness_ms",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_oldest_due_lateness_ms(self, queue: JobQueue) -> int | None:
        if queue.oldest_due is None:
            return None
        return max(0, round((self.context["now"] - queue.oldest_due).total_seconds() * 1000))


class JobQueuePurgeSerializer(serializers.Serializer):
    cancelled = serializers.IntegerField(help_text="Its scheduled jobs, now cancelled.")
