from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, transaction

from ..models import BinaryContent, Message, MessageSet, Schedule
from .common import delete_unless_in_use, validated

DUPLICATE_MESSAGE = "The fields messageset, sequence_number, lang must make a unique set."

MESSAGESET_FIELDS = {"short_name", "label", "notes", "channel", "next_set", "default_schedule", "content_type"}
MESSAGE_FIELDS = {"messageset", "sequence_number", "lang", "text_content", "binary_content", "metadata"}


def _set_fields(instance, fields: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"Unknown field(s) for {type(instance).__name__}: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        setattr(instance, name, value)


# --- Message sets ---------------------------------------------------------------


def messageset_create(
    *,
    short_name: str,
    default_schedule: Schedule,
    label: str = "",
    notes: str | None = None,
    channel: str | None = None,
    next_set: MessageSet | None = None,
    content_type: str = "text",
) -> MessageSet:
    messageset = MessageSet(
        short_name=short_name,
        default_schedule=default_schedule,
        label=label,
        notes=notes,
        channel=channel,
        next_set=next_set,
        content_type=content_type,
    )
    validated(messageset)
    messageset.save()
    return messageset


def messageset_update(*, messageset: MessageSet, **fields: Any) -> MessageSet:
    _set_fields(messageset, fields, MESSAGESET_FIELDS)
    validated(messageset)
    messageset.save()
    return messageset


def messageset_delete(*, messageset: MessageSet) -> None:
    """Delete the set and its messages, unless subscriptions use it."""
    delete_unless_in_use(messageset)


@transaction.atomic
def messageset_clone(*, messageset: MessageSet, short_name: str, label: str | None = None) -> MessageSet:
    """A copy of the set, named `short_name`, with a copy of each of its messages (sharing their files)."""
    clone = MessageSet(
        short_name=short_name,
        label=messageset.label if label is None else label,
        notes=messageset.notes,
        channel=messageset.channel,
        next_set=messageset.next_set,
        default_schedule=messageset.default_schedule,
        content_type=messageset.content_type,
    )
    validated(clone)
    clone.save()
    Message.objects.bulk_create(
        Message(
            messageset=clone,
            sequence_number=message.sequence_number,
            lang=message.lang,
            metadata=message.metadata,
            text_content=message.text_content,
            binary_content_id=message.binary_content_id,
        )
        for message in messageset.messages.order_by("sequence_number", "lang", "id")
    )
    return clone


# --- Messages -------------------------------------------------------------------


def _position_taken(message: Message) -> bool:
    return (
        Message.objects.filter(
            messageset_id=message.messageset_id, sequence_number=message.sequence_number, lang=message.lang
        )
        .exclude(pk=message.pk)
        .exists()
    )


def _save_message(message: Message) -> Message:
    validated(message, unique=False)
    duplicate = ValidationError({"non_field_errors": [DUPLICATE_MESSAGE]}, code="unique")
    if _position_taken(message):
        raise duplicate
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:
        if _position_taken(message):  # a concurrent write took the same position
            raise duplicate from None
        raise
    return message


def message_create(
    *,
    messageset: MessageSet,
    sequence_number: int,
    lang: str,
    text_content: str | None = None,
    binary_content: BinaryContent | None = None,
    metadata: dict | None = None,
) -> Message:
    """A new message; its text follows the rules of its set's channel."""
    message = Message(
        messageset=messageset,
        sequence_number=sequence_number,
        lang=lang,
        text_content=text_content,
        binary_content=binary_content,
        metadata={} if metadata is None else metadata,
    )
    return _save_message(message)


def message_update(*, message: Message, **fields: Any) -> Message:
    _set_fields(message, fields, MESSAGE_FIELDS)
    return _save_message(message)


def message_delete(*, message: Message) -> None:
    message.delete()


# --- Binary content -------------------------------------------------------------


def _delete_file_on_commit(name: str | None) -> None:
    if name:
        storage = BinaryContent._meta.get_field("content").storage
        transaction.on_commit(lambda: storage.delete(name))


def binary_content_create(*, content: File) -> BinaryContent:
    """Store an upload (within the size and type limits) under a new, time-based name."""
    binary_content = BinaryContent(content=content)
    validated(binary_content)
    binary_content.save()
    return binary_content


@transaction.atomic
def binary_content_update(*, binary_content: BinaryContent, content: File) -> BinaryContent:
    """Replace the file; the old one is deleted once the change is committed."""
    old_name = BinaryContent.objects.filter(pk=binary_content.pk).values_list("content", flat=True).first()
    binary_content.content = content
    validated(binary_content)
    binary_content.save()
    if old_name != binary_content.content.name:
        _delete_file_on_commit(old_name)
    return binary_content


@transaction.atomic
def binary_content_delete(*, binary_content: BinaryContent) -> None:
    """Delete the record and, once that is committed, its file; refused while messages use it."""
    delete_unless_in_use(binary_content)
    _delete_file_on_commit(binary_content.content.name)
