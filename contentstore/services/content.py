"""Message sets, messages and their files: every write validates the record before it saves it."""

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.files import File
from django.db import IntegrityError, transaction

from core.services import model_set_and_validate, model_settable_fields

from ..models import BinaryContent, Message, MessageSet, Schedule
from .common import delete_unless_in_use

DUPLICATE_MESSAGE = "The fields messageset, sequence_number, lang must make a unique set."


# --- Message sets ---------------------------------------------------------------


def _save_messageset(messageset: MessageSet, fields: dict[str, Any]) -> MessageSet:
    model_set_and_validate(messageset, fields)
    messageset.save()
    return messageset


def messageset_create(*, short_name: str, default_schedule: Schedule, **fields: Any) -> MessageSet:
    """A new set; `fields` are its other fields (label, notes, channel, next_set, content_type)."""
    return _save_messageset(MessageSet(), {"short_name": short_name, "default_schedule": default_schedule, **fields})


def messageset_update(*, messageset: MessageSet, **fields: Any) -> MessageSet:
    return _save_messageset(messageset, fields)


def messageset_delete(*, messageset: MessageSet) -> None:
    """Delete the set and its messages, unless subscriptions use it."""
    delete_unless_in_use(messageset)


@transaction.atomic
def messageset_clone(*, messageset: MessageSet, short_name: str, label: str | None = None) -> MessageSet:
    """A copy of the set, named `short_name`, with a copy of each of its messages (sharing their files)."""
    fields = {name: getattr(messageset, name) for name in model_settable_fields(MessageSet)}
    fields["short_name"] = short_name
    if label is not None:
        fields["label"] = label
    clone = _save_messageset(MessageSet(), fields)
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


def _save_message(message: Message, fields: dict[str, Any]) -> Message:
    model_set_and_validate(message, fields, unique=False)
    duplicate = ValidationError({NON_FIELD_ERRORS: [DUPLICATE_MESSAGE]}, code="unique")
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


def message_create(*, messageset: MessageSet, sequence_number: int, lang: str, **fields: Any) -> Message:
    """A new message; `fields` are its other fields (text_content, binary_content, metadata).
    Its text follows the rules of its set's channel."""
    return _save_message(
        Message(), {"messageset": messageset, "sequence_number": sequence_number, "lang": lang, **fields}
    )


def message_update(*, message: Message, **fields: Any) -> Message:
    return _save_message(message, fields)


def message_delete(*, message: Message) -> None:
    message.delete()


# --- Binary content -------------------------------------------------------------


def _delete_file_on_commit(name: str | None) -> None:
    if name:
        storage = BinaryContent._meta.get_field("content").storage
        transaction.on_commit(lambda: storage.delete(name), robust=True)  # an unreachable store leaves the file


def binary_content_create(*, content: File) -> BinaryContent:
    """Store an upload (within the size and type limits) under a new, time-based name."""
    binary_content = model_set_and_validate(BinaryContent(), {"content": content})
    binary_content.save()
    return binary_content


@transaction.atomic
def binary_content_update(*, binary_content: BinaryContent, content: File) -> BinaryContent:
    """Replace the file; the old one is deleted once the change is committed."""
    old_name = BinaryContent.objects.filter(pk=binary_content.pk).values_list("content", flat=True).first()
    model_set_and_validate(binary_content, {"content": content})
    binary_content.save()
    if old_name != binary_content.content.name:
        _delete_file_on_commit(old_name)
    return binary_content


@transaction.atomic
def binary_content_delete(*, binary_content: BinaryContent) -> None:
    """Delete the record and, once that is committed, its file; refused while messages use it."""
    delete_unless_in_use(binary_content)
    _delete_file_on_commit(binary_content.content.name)
