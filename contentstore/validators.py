"""Field rules shared by the API, the admin and the CSV import."""

import mimetypes
import re
from pathlib import PurePath

import filetype
from celery.schedules import ParseException, crontab
from croniter import croniter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat

# The cron fields, in the order of a cron string, with what each accepts.
CRON_FIELDS = {
    "minute": "0-59",
    "hour": "0-23",
    "day_of_month": "1-31",
    "month_of_year": "1-12",
    "day_of_week": "0-6 (Sunday is 0) or sun-sat",
}


def cron_field(value: str | None) -> str:
    """A cron field as the cron string uses it: whitespace removed, empty read as `*`."""
    return "".join(str(value or "").split()) or "*"


def _validate_cron(value: str, field: str) -> None:
    spec = cron_field(value)
    parts = ["*"] * len(CRON_FIELDS)
    parts[list(CRON_FIELDS).index(field)] = spec
    try:
        crontab(**{field: spec})  # the parser the scheduler fires with
        valid = croniter.is_valid(" ".join(parts))  # the one run times are computed with
    except (ValueError, ParseException):
        valid = False
    if not valid:
        label = field.replace("_", " ")
        raise ValidationError(
            f"{spec!r} is not a valid {label}: use {CRON_FIELDS[field]}, with * , - and / (e.g. */15 or 1-5).",
            code="invalid_cron",
        )


def validate_minute(value: str) -> None:
    _validate_cron(value, "minute")


def validate_hour(value: str) -> None:
    _validate_cron(value, "hour")


def validate_day_of_month(value: str) -> None:
    _validate_cron(value, "day_of_month")


def validate_month_of_year(value: str) -> None:
    _validate_cron(value, "month_of_year")


def validate_day_of_week(value: str) -> None:
    _validate_cron(value, "day_of_week")


# Typographic quotes and dash some phones cannot show (left and right double quote, right single
# quote, en dash), with their plain replacements.
TYPOGRAPHIC_CHARACTERS = {"\u201c": '"', "\u201d": '"', "\u2019": "'", "\u2013": "-"}


def validate_plain_punctuation(value: str | None) -> None:
    """Reject text holding typographic quotes or dashes, naming each one found."""
    found = list(dict.fromkeys(char for char in value or "" if char in TYPOGRAPHIC_CHARACTERS))
    if found:
        named = ", ".join(f"{char} (use {TYPOGRAPHIC_CHARACTERS[char]})" for char in found)
        raise ValidationError(
            f"Text has special characters which can be replaced: {named}.", code="typographic_characters"
        )


WHATSAPP_FORBIDDEN = re.compile(r"[\r\n\t]|\s{4}")
WHATSAPP_MESSAGE = "Text for WhatsApp must not include newline, tabs, or 4 consecutive spaces."
TEXT_OR_FILE_MESSAGE = "Messages must have text or file attached"


def is_whatsapp(channel: str | None) -> bool:
    return "whatsapp" in (channel or "").lower()


def message_text_errors(*, channel: str | None, text_content: str | None, has_file: bool) -> list[str]:
    """What is wrong with a message's text for its set's channel, as messages for `text_content`."""
    if not text_content and not has_file:
        return [TEXT_OR_FILE_MESSAGE]
    if text_content and is_whatsapp(channel) and WHATSAPP_FORBIDDEN.search(text_content):
        return [WHATSAPP_MESSAGE]
    return []


# Types Python's table may not know on every system.
EXTRA_TYPES = {
    ".amr": "audio/amr",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".oga": "audio/ogg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".webp": "image/webp",
}


def guess_media_type(name: str) -> str | None:
    """A file's media type, told from its name's extension."""
    extension = PurePath(name).suffix.lower()
    return EXTRA_TYPES.get(extension) or mimetypes.guess_type(f"file{extension}")[0]


def media_type_allowed(media_type: str | None, allowed: list[str]) -> bool:
    if media_type is None:
        return False
    family = media_type.split("/")[0]
    return any(pattern in (media_type, f"{family}/*", "*/*") for pattern in allowed)


def _size(count: int) -> str:
    return filesizeformat(count).replace("\xa0", " ")


def _stored(file) -> bool:
    """Whether `file` is already in storage (checked when it was uploaded)."""
    return getattr(file, "_committed", False)


def validate_upload_size(file) -> None:
    if _stored(file):
        return
    limit = settings.BINARY_CONTENT_MAX_BYTES
    size = file.size
    if size > limit:
        raise ValidationError(
            f"The file is {_size(size)}; uploads may be at most {_size(limit)} "
            f"({limit} bytes, BINARY_CONTENT_MAX_BYTES).",
            code="file_too_large",
        )
    if size == 0:
        raise ValidationError("The file is empty.", code="empty")


# Names a format may have besides the one `filetype` gives it (its `extension`, here with a dot).
OTHER_EXTENSIONS = {
    "jpg": (".jpeg", ".jpe", ".jfif"),
    "tif": (".tiff",),
    "ogg": (".oga", ".opus", ".spx"),
    "aiff": (".aif", ".aifc"),
    "midi": (".mid",),
    "heic": (".heif",),
}
# Never accepted, whatever BINARY_CONTENT_TYPES says: SVG is a document that can carry scripts.
REFUSED_TYPES = ("image/svg+xml",)
SVG_MARKUP = b"<svg"
SNIFFED_BYTES = 8192


def format_extensions(kind: filetype.Type) -> tuple[str, ...]:
    """The extensions a file of this format (as `filetype` tells it) may be named with."""
    return (f".{kind.extension}", *OTHER_EXTENSIONS.get(kind.extension, ()))


def sniff_format(file) -> tuple[filetype.Type | None, bytes]:
    """A file's format, told from its first bytes (None when they match no known one), and those bytes."""
    position = file.tell()
    try:
        head = file.read(SNIFFED_BYTES)
    finally:
        file.seek(position)
    return filetype.guess(head), head


def validate_upload_type(file) -> None:
    """The name must say an allowed type, and the bytes must be a file of exactly that format (an
    image named .png is a PNG, audio named .mp3 is MP3), so a file is always served as what it is
    and a page, a script or an SVG cannot be served as media."""
    if _stored(file):
        return
    allowed = settings.BINARY_CONTENT_TYPES
    name = PurePath(file.name or "").name
    named = guess_media_type(name)
    if named in REFUSED_TYPES:
        raise ValidationError(
            f"{name!r} is of type {named}, which is never accepted: it can carry scripts.", code="file_type"
        )
    if not media_type_allowed(named, allowed):
        told = f"of type {named}" if named else "of unknown type (from its extension)"
        raise ValidationError(
            f"{name!r} is {told}; allowed types: {', '.join(allowed)} (BINARY_CONTENT_TYPES).", code="file_type"
        )
    kind, head = sniff_format(file)
    if kind is None or PurePath(name).suffix.lower() not in format_extensions(kind):
        found = f"{kind.mime} data" if kind else "no audio or image format this service recognises"
        raise ValidationError(
            f"{name!r} is named as {named} but its content is {found}; upload the file itself.",
            code="file_content",
        )
    if SVG_MARKUP in head.lower():
        raise ValidationError(
            f"{name!r} holds SVG markup, which is never accepted: it can carry scripts.", code="file_content"
        )
