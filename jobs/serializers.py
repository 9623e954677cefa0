from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from itertools import pairwise
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx
from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Attempt, HttpMethod, Job
from .signing import RESERVED_HEADERS

AT_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S.%f %z", "%Y-%m-%dT%H:%M:%S %z")
AT_HELP = (
    "Write it as 2030-01-31T18:36:21 (read in JOBS_TIME_ZONE), 2030-01-31T18:36:21Z, "
    "2030-01-31T18:36:21+02:00 or 2030-01-31 18:36:21 +0200."
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
DEFAULT_PORTS = {"http": 80, "https": 443}


def job_zone() -> ZoneInfo:
    return ZoneInfo(settings.JOBS_TIME_ZONE)


def parse_at(value: str) -> datetime:
    """A time from the forms the API accepts; one without an offset is read in JOBS_TIME_ZONE.

    An ambiguous local time (clocks going back) is the first of the two; a time that
    does not exist (clocks going forward) is read with the offset before the change.
    """
    text = value.strip()
    moment = None
    for pattern in AT_FORMATS:
        try:
            moment = datetime.strptime(text, pattern)
            break
        except ValueError:
            continue
    if moment is None:
        moment = datetime.fromisoformat(text)  # ValueError when it is not a time
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=job_zone())
    return moment


def format_time(moment: datetime | None) -> str | None:
    """`2011-01-31 18:36:21 -0800`, in JOBS_TIME_ZONE (fractions of a second only when there are some)."""
    if moment is None:
        return None
    local = moment.astimezone(UTC).astimezone(job_zone())  # through UTC: a time in a DST gap is normalised
    fraction = f".{local.microsecond:06d}".rstrip("0") if local.microsecond else ""
    return f"{local:%Y-%m-%d %H:%M:%S}{fraction} {local:%z}"


def normalize_uri(value: str) -> str:
    """The URI with its scheme, host, explicit port and path: `http://yourapp.com:80/?a=1`."""
    text = value.strip()
    if len(text) > settings.JOBS_MAX_URI_LENGTH:
        raise serializers.ValidationError(f"Must be at most {settings.JOBS_MAX_URI_LENGTH} characters.")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in text):
        raise serializers.ValidationError(
            "Must be escaped: no spaces or control characters (write a space as %20), "
            f"e.g. https://example.org/hook?text=This%20is%20text, not {text!r}."
        )
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise serializers.ValidationError(
            f"Must be an absolute http or https URL such as https://example.org/hook, not {text!r}."
        )
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
        host = httpx.URL(text).raw_host.decode("ascii")
    except (ValueError, httpx.InvalidURL, UnicodeError) as error:
        raise serializers.ValidationError(f"Is not a valid URL ({error}).") from None
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


class UriField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=True, **kwargs)

    def to_internal_value(self, data) -> str:
        text = super().to_internal_value(data)
        return normalize_uri(text) if text else ""


@extend_schema_field(OpenApiTypes.STR)
class AtField(serializers.Field):
    default_error_messages = {"invalid": "Is not a time: {value!r}. " + AT_HELP}

    def to_internal_value(self, data) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        try:
            return parse_at(data)
        except ValueError:
            self.fail("invalid", value=data)

    def to_representation(self, value: datetime) -> str:
        return format_time(value)


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
                data = json.loads(data)
            except json.JSONDecodeError:
                data = None
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                'Must be an object of header names to values, e.g. {"Content-Type": "application/json"}, '
                "or form fields job[headers][Content-Type]=application/json."
            )
        if len(data) > settings.JOBS_MAX_HEADERS:
            raise serializers.ValidationError(f"At most {settings.JOBS_MAX_HEADERS} headers.")
        headers = {}
        for name, value in data.items():
            if not _TOKEN.match(str(name)):
                raise serializers.ValidationError(f"{name!r} is not a header name.")
            if name.lower() in RESERVED_HEADERS:
                raise serializers.ValidationError(f"{name} is set by the service and cannot be given.")
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise serializers.ValidationError(f"The value of {name} must be a string.")
            text = str(value)
            if any(char in text for char in "\r\n\x00"):
                raise serializers.ValidationError(f"The value of {name} may not contain line breaks or NUL.")
            headers[name] = text
        return headers

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
        if not delays:
            return []
        if len(delays) > settings.JOBS_MAX_RETRIES:
            raise serializers.ValidationError(f"At most {settings.JOBS_MAX_RETRIES} retries.")
        if delays[0] < 1 or any(later <= earlier for earlier, later in pairwise(delays)):
            raise serializers.ValidationError(
                "Must be increasing seconds after the first attempt, each at least 1, e.g. 10,120,900."
            )
        if delays[-1] > settings.JOBS_MAX_RETRY_DELAY:
            raise serializers.ValidationError(
                f"The last retry may be at most {settings.JOBS_MAX_RETRY_DELAY} s after the first attempt."
            )
        return delays

    def to_representation(self, value):
        return value


class JobInputSerializer(serializers.Serializer):
    """A job's parameters; for an update, only those given change."""

    uri = UriField(error_messages={"required": "Give the URL to call, e.g. job[uri]=https://example.org/hook."})
    at = AtField(required=False, help_text="When to send it (now when not given). " + AT_HELP)
    method = MethodField(required=False, help_text="GET (the default), POST, PUT, PATCH, DELETE, HEAD or OPTIONS.")
    callback_uri = UriField(required=False, allow_blank=True, help_text="Called with a POST after a 2xx.")
    failure_callback_uri = UriField(
        required=False, allow_blank=True, help_text="Called with a POST when the last retry has failed."
    )
    headers = HeadersField(required=False, help_text="Headers to send.")
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, help_text="Body to send.")
    timeout = serializers.IntegerField(required=False, help_text="Seconds each attempt may take.")
    retry_schedule = RetryDelaysField(required=False, help_text="Seconds after the first attempt to retry at.")

    def validate_body(self, value: str) -> str:
        if len(value.encode()) > settings.JOBS_MAX_BODY_BYTES:
            raise serializers.ValidationError(f"Must be at most {settings.JOBS_MAX_BODY_BYTES} bytes.")
        return value

    def validate_timeout(self, value: int) -> int:
        if not 1 <= value <= settings.JOBS_MAX_TIMEOUT:
            raise serializers.ValidationError(f"Must be from 1 to {settings.JOBS_MAX_TIMEOUT} seconds.")
        return value


class JobAttemptSerializer(serializers.ModelSerializer):
    started_at = serializers.SerializerMethodField()

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

    def get_started_at(self, attempt: Attempt) -> str:
        return format_time(attempt.started_at)


class JobSerializer(serializers.ModelSerializer):
    """A job as the API shows it: the reference's id, uri, method, at, and its state."""

    id = serializers.CharField()
    at = serializers.SerializerMethodField()
    next_attempt_at = serializers.SerializerMethodField()
    callback_uri = serializers.SerializerMethodField()
    failure_callback_uri = serializers.SerializerMethodField()
    retry_schedule = serializers.SerializerMethodField()

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
        ]

    def get_at(self, job: Job) -> str:
        return format_time(job.at)

    def get_next_attempt_at(self, job: Job) -> str | None:
        return format_time(job.next_attempt_at)

    def get_callback_uri(self, job: Job) -> str | None:
        return job.callback_uri or None

    def get_failure_callback_uri(self, job: Job) -> str | None:
        return job.failure_callback_uri or None

    def get_retry_schedule(self, job: Job) -> list[int]:
        return job.retry_delays


class JobCallbackSerializer(serializers.ModelSerializer):
    id = serializers.CharField()
    at = serializers.SerializerMethodField()
    next_attempt_at = serializers.SerializerMethodField()
    attempts = JobAttemptSerializer(many=True)

    class Meta:
        model = Job
        fields = ["id", "kind", "uri", "at", "state", "next_attempt_at", "body", "attempts"]

    def get_at(self, job: Job) -> str:
        return format_time(job.at)

    def get_next_attempt_at(self, job: Job) -> str | None:
        return format_time(job.next_attempt_at)


class JobDetailSerializer(JobSerializer):
    """A job with what it sends, every attempt and its callbacks."""

    attempts = JobAttemptSerializer(many=True)
    callbacks = JobCallbackSerializer(many=True)
    created_at = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "headers", "body", "created_at", "attempts", "callbacks"]

    def get_created_at(self, job: Job) -> str:
        return format_time(job.created_at)


# Shapes of the responses, for the API docs.
class JobEnvelopeSerializer(serializers.Serializer):
    job = JobSerializer()


class JobSuccessSerializer(serializers.Serializer):
    success = JobEnvelopeSerializer()


class JobDetailEnvelopeSerializer(serializers.Serializer):
    job = JobDetailSerializer()


class JobDetailSuccessSerializer(serializers.Serializer):
    success = JobDetailEnvelopeSerializer()


class JobsMessageSerializer(serializers.Serializer):
    message = serializers.CharField()


class JobsMessageSuccessSerializer(serializers.Serializer):
    success = JobsMessageSerializer()


class JobPageSerializer(serializers.Serializer):
    jobs = JobSerializer(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class JobListSuccessSerializer(serializers.Serializer):
    success = JobPageSerializer()


class JobsErrorSerializer(serializers.Serializer):
    error = serializers.DictField(child=serializers.CharField(), help_text='{"<parameter>": "<message>"}')
