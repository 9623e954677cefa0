"""Plain factory functions for content store records, built through the services."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django_celery_beat.models import PeriodicTask

from contentstore import services
from contentstore.models import BinaryContent, Message, MessageSet, Schedule

# The first bytes of each format: enough for the content check of an upload.
AUDIO_BYTES = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 32  # MP3 with an ID3 tag
OGG_BYTES = b"OggS\x00\x02" + b"\x00" * 32
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def make_schedule(**fields) -> Schedule:
    return services.schedule_create(**{"minute": "0", "hour": "8", "day_of_week": "1", **fields})


def make_messageset(short_name: str = "baby", *, schedule: Schedule | None = None, **fields) -> MessageSet:
    return services.messageset_create(short_name=short_name, default_schedule=schedule or make_schedule(), **fields)


def make_message(messageset: MessageSet, sequence_number: int = 1, lang: str = "eng", **fields) -> Message:
    fields.setdefault("text_content", f"Message {sequence_number} in {lang}")
    return services.message_create(messageset=messageset, sequence_number=sequence_number, lang=lang, **fields)


def upload(name: str = "hello.mp3", data: bytes = AUDIO_BYTES, content_type: str = "audio/mpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def make_binary_content(name: str = "hello.mp3", data: bytes = AUDIO_BYTES) -> BinaryContent:
    return services.binary_content_create(content=upload(name, data))


def fire_tasks():
    """The scheduler's periodic tasks that fire schedules (other apps have periodic tasks too)."""
    return PeriodicTask.objects.filter(task="subscriptions.send_schedule")
