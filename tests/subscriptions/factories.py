"""Plain factory functions for subscriptions and the content they use, built through the services."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.core.files.uploadedfile import SimpleUploadedFile

from contentstore import services as content
from contentstore.models import BinaryContent, Message, MessageSet, Schedule
from subscriptions import services
from subscriptions.models import Subscription

# A Monday at 08:00 UTC: the run time of the default schedule below, and weekly after it.
MONDAY_8AM = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
AUDIO_BYTES = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 32


def make_schedule(**fields) -> Schedule:
    return content.schedule_create(**{"minute": "0", "hour": "8", "day_of_week": "1", **fields})


def make_messageset(short_name: str = "baby", *, schedule: Schedule | None = None, **fields) -> MessageSet:
    return content.messageset_create(short_name=short_name, default_schedule=schedule or make_schedule(), **fields)


def make_messages(messageset: MessageSet, count: int, lang: str = "eng", **fields) -> list[Message]:
    return [
        content.message_create(
            messageset=messageset,
            sequence_number=number,
            lang=lang,
            **{"text_content": f"Message {number} in {lang}", **fields},
        )
        for number in range(1, count + 1)
    ]


def make_file(name: str = "picture.png", data: bytes = PNG_BYTES) -> BinaryContent:
    return content.binary_content_create(content=SimpleUploadedFile(name, data))


def make_subscription(messageset: MessageSet, *, schedule: Schedule | None = None, **fields) -> Subscription:
    fields.setdefault("identity", "8646b7bc-b511-4965-a90b-e1145e398703")
    fields.setdefault("lang", "eng")
    return services.subscription_create(
        messageset=messageset, schedule=schedule or messageset.default_schedule, **fields
    )


def fresh(subscription: Subscription) -> Subscription:
    return Subscription.objects.get(pk=subscription.pk)


def week(number: int) -> datetime:
    """The run time of the weekly default schedule, `number` weeks after the first."""
    return MONDAY_8AM + timedelta(weeks=number)


def wait_until(condition: Callable[[], bool], *, seconds: float = 20) -> bool:
    """Whether `condition` holds within `seconds` (for work done by a worker)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
