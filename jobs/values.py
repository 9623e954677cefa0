"""The values a job is made of, and the rules they follow.

When (a time, read and written in JOBS_TIME_ZONE, within EARLIEST..LATEST so that it
stays a time in UTC, in PostgreSQL and in Python whatever offset it is shown with, or
for a recurring job a five-field cron expression read in an IANA time zone),
where (an absolute http or https URI without credentials, kept as the client wrote it),
what it sends (headers that HTTP/1.1 can carry, body, timeout), when it retries
(delays after the first attempt) and the id that makes its creation happen once, within
the service's limits. Each check returns the
value as it is stored, or raises `InvalidValue` with the message a client reads; the
serializers and filters apply them to what a client sends.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterError, croniter
from django.conf import settings
from django.utils import timezone
from yarl import URL

from .headers import RESERVED_HEADERS


class InvalidValue(ValueError):
    """A value a job may not have; the message says why, and how to write it."""


AT_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S.%f %z", "%Y-%m-%dT%H:%M:%S %z")
AT_HELP = (
    "Write it as 2030-01-31T18:36:21 (read in JOBS_TIME_ZONE), 2030-01-31T18:36:21Z, "
    "2030-01-31T18:36:21+02:00 or 2030-01-31 18:36:21 +0200."
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# A header value HTTP/1.1 can carry: visible ASCII, with spaces or tabs only between visible characters.
_HEADER_VALUE = re.compile(r"^(?:[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*)?$")
_USERINFO = re.compile(r"^([^:/?#]*:?//)[^/?#]*@")
# The times a job may have: a day inside Python's (and PostgreSQL's common) years 1..9999, so that
# every offset a time may be written or shown with (less than a day) keeps it within them.
EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
URI_SCHEMES = ("http", "https")
DEDUPLICATION_ID_MAX_LENGTH = 128
_DEDUPLICATION_ID = re.compile(r"^[\x21-\x7e]+\Z")
QUEUE_NAME_MAX_LENGTH = 64
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
QUEUE_NAME_HELP = (
    f"A queue name is 1 to {QUEUE_NAME_MAX_LENGTH} characters: letters, digits, '-', '_' and '.', "
    "starting with a letter or digit, e.g. emails or billing-eu."
)


def job_zone() -> ZoneInfo:
    return ZoneInfo(settings.JOBS_TIME_ZONE)


def parse_at(value: str) -> datetime:
    """A time from the forms the API accepts; one without an offset is read in JOBS_TIME_ZONE.

    An ambiguous local time (clocks going back) is the first of the two; a time that
    does not exist (clocks going forward) is read with the offset before the change.
    ValueError when it is not a time; InvalidValue when it is one outside EARLIEST..LATEST.
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
    return time_in_range(moment)


def time_in_range(moment: datetime) -> datetime:
    """`moment` when it lies within EARLIEST..LATEST (in UTC, after its offset); InvalidValue otherwise."""
    try:
        inside = EARLIEST <= moment <= LATEST  # compared in UTC; an offset that crosses year 1 or 9999 raises
    except OverflowError:
        inside = False
    if not inside:
        earliest, latest = (bound.isoformat().replace("+00:00", "Z") for bound in (EARLIEST, LATEST))
        raise InvalidValue(f"Must be from {earliest} to {latest} in UTC (after its offset), not {moment.isoformat()}.")
    return moment


CRON_HELP = (
    "Write five fields, minute hour day-of-month month day-of-week, e.g. 0 9 * * mon-fri "
    "(09:00 on weekdays) or */15 * * * * (every quarter of an hour)."
)
CRON_MAX_LENGTH = 200
# croniter's random (R) and hashed (H) values: a minute picked anew each time a run time is worked out.
_CRON_RANDOM = re.compile(r"(?:^|[ ,])[rh](?:[(/ ,]|\Z)", re.IGNORECASE)
# A time a cron is checked from: any will do, cron has no years.
_CRON_CHECK_FROM = datetime(2000, 1, 1, tzinfo=UTC)


def cron_expression(value: str) -> str:
    """A recurring job's cron: five fields as cron (and croniter) read them, that match some time."""
    text = " ".join(value.split())
    if len(text) > CRON_MAX_LENGTH:
        raise InvalidValue(f"Must be at most {CRON_MAX_LENGTH} characters.")
    if _CRON_RANDOM.search(text):
        raise InvalidValue(f"Must name its times, not pick them at random (R) or by a hash (H): {value!r}. {CRON_HELP}")
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise InvalidValue(f"Is not a five-field cron expression: {value!r}. {CRON_HELP}")
    try:
        next_run_time(text, "UTC", after=_CRON_CHECK_FROM)
    except CroniterError:
        raise InvalidValue(f"Never runs: no day matches {text!r}. {CRON_HELP}") from None
    return text


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones() - {"localtime"})


def time_zone_name(value: str) -> str:
    """An IANA time zone name the zone database knows (Europe/London, America/New_York, UTC)."""
    name = value.strip()
    if name not in _zone_names():
        raise InvalidValue(f"Is not an IANA time zone name such as Europe/London, America/New_York or UTC: {value!r}.")
    return name


def next_run_time(cron: str, zone: str, *, after: datetime) -> datetime:
    """The first time after `after` that `cron` matches on the clocks of `zone`, in UTC.

    croniter's reading of daylight-saving changes: a local time the clocks skip runs once, at the
    change (01:30 on the day London springs forward runs at 02:00 BST); a local time they repeat
    runs twice, once in each offset (01:30 BST, then 01:30 GMT an hour later).
    """
    return croniter(cron, after.astimezone(ZoneInfo(zone))).get_next(datetime).astimezone(UTC)


def last_run_time(cron: str, zone: str, *, until: datetime) -> datetime:
    """The latest time at or before `until` that `cron` matches on the clocks of `zone`, in UTC."""
    start = (until + timedelta(microseconds=1)).astimezone(ZoneInfo(zone))  # croniter looks strictly before
    return croniter(cron, start).get_prev(datetime).astimezone(UTC)


def format_time(moment: datetime | None) -> str | None:
    """`2011-01-31 18:36:21 -0800`, in JOBS_TIME_ZONE (fractions of a second only when there are some)."""
    if moment is None:
        return None
    local = moment.astimezone(UTC).astimezone(job_zone())  # through UTC: a time in a DST gap is normalised
    fraction = f".{local.microsecond:06d}".rstrip("0") if local.microsecond else ""
    return f"{local.year:04d}-{local:%m-%d %H:%M:%S}{fraction} {local:%z}"  # %Y does not pad year 1


def without_userinfo(uri: str) -> str:
    """`uri` with any credentials (`user:password@`) masked, to show it without them."""
    return _USERINFO.sub(r"\1***@", uri)


def checked_uri(value: str) -> str:
    """The URI as given (surrounding spaces aside), once it is known to be an absolute http or
    https URL the outbound engine can call: a client reads back exactly what it sent.

    A URI with credentials (`user:password@`) is refused, and no message repeats them.
    """
    text = value.strip()
    shown = without_userinfo(text)
    if len(text) > settings.JOBS_MAX_URI_LENGTH:
        raise InvalidValue(f"Must be at most {settings.JOBS_MAX_URI_LENGTH} characters.")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in text):
        raise InvalidValue(
            "Must be escaped: no spaces or control characters (write a space as %20), "
            f"e.g. https://example.org/hook?text=This%20is%20text, not {shown!r}."
        )
    try:
        parts = urlsplit(text)
    except ValueError as error:  # a bracket left open: http://[::1/
        raise InvalidValue(f"Is not a valid URL ({error}).") from None
    if parts.scheme.lower() not in URI_SCHEMES or not parts.hostname:
        raise InvalidValue(f"Must be an absolute http or https URL such as https://example.org/hook, not {shown!r}.")
    if "@" in parts.netloc:
        raise InvalidValue(
            "Must not hold credentials (user:password@host): they are not sent from a URL, and a URL is shown "
            "back. Send them in a header instead, e.g. job[headers][Authorization]=Basic <base64 of user:password>."
        )
    try:
        parts.port  # noqa: B018 (reading it checks it: a port out of range raises)
        URL(text).raw_host  # noqa: B018 (as the outbound engine will request it: IDNA)
    except (ValueError, UnicodeError) as error:
        raise InvalidValue(f"Is not a valid URL ({error}).") from None
    return text


def request_headers(headers: dict) -> dict[str, str]:
    """Headers a job may send (at most JOBS_MAX_HEADERS, none the service sets), values as text.

    A value is what HTTP/1.1 can carry (visible ASCII, spaces and tabs between), without the
    spaces or tabs around it, which HTTP ignores.
    """
    if len(headers) > settings.JOBS_MAX_HEADERS:
        raise InvalidValue(f"At most {settings.JOBS_MAX_HEADERS} headers.")
    checked = {}
    for name, value in headers.items():
        if not _TOKEN.fullmatch(str(name)):
            raise InvalidValue(f"{name!r} is not a header name.")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidValue(f"{name} is set by the service and cannot be given.")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InvalidValue(f"The value of {name} must be a string.")
        text = str(value).strip(" \t")
        if any(char in text for char in "\r\n\x00"):
            raise InvalidValue(f"The value of {name} may not contain line breaks or NUL.")
        if not _HEADER_VALUE.fullmatch(text):
            raise InvalidValue(
                f"The value of {name} may hold only visible ASCII characters, spaces and tabs; "
                "encode other text first (e.g. percent-encoding, or RFC 8187: UTF-8''Zo%C3%AB)."
            )
        checked[name] = text
    return checked


def retry_delays(delays: list[int]) -> list[int]:
    """A job's own retry delays: increasing seconds after the first attempt, within the service's limits."""
    if not delays:
        return []
    if len(delays) > settings.JOBS_MAX_RETRIES:
        raise InvalidValue(f"At most {settings.JOBS_MAX_RETRIES} retries.")
    if delays[0] < 1 or any(later <= earlier for earlier, later in pairwise(delays)):
        raise InvalidValue("Must be increasing seconds after the first attempt, each at least 1, e.g. 10,120,900.")
    if delays[-1] > settings.JOBS_MAX_RETRY_DELAY:
        raise InvalidValue(f"The last retry may be at most {settings.JOBS_MAX_RETRY_DELAY} s after the first attempt.")
    return delays


def request_body(body: str) -> str:
    """A body a job may send: at most JOBS_MAX_BODY_BYTES."""
    if len(body.encode()) > settings.JOBS_MAX_BODY_BYTES:
        raise InvalidValue(f"Must be at most {settings.JOBS_MAX_BODY_BYTES} bytes.")
    return body


def attempt_timeout(seconds: int) -> int:
    """Seconds each attempt may take: from 1 to JOBS_MAX_TIMEOUT."""
    if not 1 <= seconds <= settings.JOBS_MAX_TIMEOUT:
        raise InvalidValue(f"Must be from 1 to {settings.JOBS_MAX_TIMEOUT} seconds.")
    return seconds


def deduplication_id(value: str) -> str:
    """An id that makes a create happen once: 1 to DEDUPLICATION_ID_MAX_LENGTH visible ASCII characters.

    Visible ASCII (no spaces or control characters) so that the same id can come as a form
    field, a query parameter, JSON or an `Idempotency-Key` header and be compared as it is.
    """
    if not value:
        raise InvalidValue("Must not be empty: give an id of your own, e.g. order-1234-reminder.")
    if len(value) > DEDUPLICATION_ID_MAX_LENGTH:
        raise InvalidValue(f"Must be at most {DEDUPLICATION_ID_MAX_LENGTH} characters, not {len(value)}.")
    if not _DEDUPLICATION_ID.fullmatch(value):
        raise InvalidValue(
            "May hold only visible ASCII characters (letters, digits and punctuation; no spaces), "
            "e.g. order-1234-reminder or a UUID."
        )
    return value


def queue_name(name: str) -> str:
    """A queue's name: short and slug-like, so that it reads the same in a path, a form field and JSON."""
    if not isinstance(name, str) or not name:
        raise InvalidValue(QUEUE_NAME_HELP)
    if len(name) > QUEUE_NAME_MAX_LENGTH:
        raise InvalidValue(f"Is {len(name)} characters long. {QUEUE_NAME_HELP}")
    if not _QUEUE_NAME.match(name):
        raise InvalidValue(f"Is not a queue name: {name!r}. {QUEUE_NAME_HELP}")
    return name
