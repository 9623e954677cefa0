"""Reads of the content store that are more than a one-line query."""

import csv
import json
from typing import TextIO

from django.db.models import Prefetch, QuerySet

from .models import Message, MessageSet
from .services.message_csv import CSV_COLUMNS, csv_cell


def messageset_languages() -> dict[int, list[str]]:
    """Each set's id with the languages of its messages, sorted (sets without messages too)."""
    languages: dict[int, list[str]] = {pk: [] for pk in MessageSet.objects.order_by("pk").values_list("pk", flat=True)}
    pairs = Message.objects.order_by("messageset_id", "lang").values_list("messageset_id", "lang").distinct()
    for messageset_id, lang in pairs:
        languages.setdefault(messageset_id, []).append(lang)
    return languages


def messages_in_order() -> QuerySet[Message]:
    """Messages by sequence number, then language, each with its file."""
    return Message.objects.select_related("binary_content").order_by("sequence_number", "lang", "id")


def messagesets_with_messages() -> QuerySet[MessageSet]:
    """Message sets with their messages (and files) prefetched in order."""
    return MessageSet.objects.prefetch_related(Prefetch("messages", queryset=messages_in_order()))


def message_export_csv(*, messageset: MessageSet, file: TextIO) -> int:
    """Write the set's messages as CSV in the format the import reads; return how many.

    A cell a spreadsheet would run as a formula is written after a ' (`csv_cell`), which the import takes off.
    """
    writer = csv.writer(file)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for message in messages_in_order().filter(messageset=messageset).iterator(chunk_size=1000):
        cells = [
            str(message.sequence_number),
            message.lang,
            message.text_content or "",
            message.binary_content.content.name if message.binary_content else "",
            json.dumps(message.metadata, ensure_ascii=False) if message.metadata else "",
        ]
        writer.writerow([csv_cell(cell) for cell in cells])
        count += 1
    return count
