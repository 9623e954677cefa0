"""Bulk import of a message set's messages from CSV: all rows or none.

Also the one rule for cells a spreadsheet would run as formulas, which the export
writes escaped and the import reads back (`csv_cell`, `csv_cell_value`).
"""

import csv
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TextIO

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils import timezone

from core.services import model_set_and_validate

from ..errors import MessageImportError
from ..models import BinaryContent, Message, MessageSet

REQUIRED_COLUMNS = ("sequence_number", "lang", "text_content")
OPTIONAL_COLUMNS = ("binary_content", "metadata")
CSV_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
# Rows written per database statement.
WRITE_BATCH = 500

Progress = Callable[[str, int, int], None]

# A cell a spreadsheet would run (OWASP, CSV injection): one starting with =, +, - or @ (or their
# full-width forms), also after leading whitespace or invisible characters, or with a tab or carriage
# return. The export writes such a cell after a ' (which spreadsheets take as "this is text"), and so
# also a cell that is already ' then such a cell; the import takes one ' off exactly those, so every
# text reads back as it was.
_FORMULA = r"(?:[\s\u200b-\u200d\u2060\ufeff]*[=+\-@\uff1d\uff0b\uff0d\uff20]|[\t\r])"
_NEEDS_ESCAPE = re.compile(f"'*{_FORMULA}")
_ESCAPED = re.compile(f"'+{_FORMULA}")


def csv_cell(value: str) -> str:
    """`value` as the export writes it: after a ' when a spreadsheet would run it."""
    return f"'{value}" if _NEEDS_ESCAPE.match(value) else value


def csv_cell_value(cell: str) -> str:
    """What an exported cell holds: `csv_cell` undone."""
    return cell[1:] if _ESCAPED.match(cell) else cell


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    deleted: int


@dataclass
class _Row:
    number: int  # as a spreadsheet numbers it: the header is row 1
    values: dict[str, str]


def _read_rows(file: TextIO) -> list[_Row]:
    reader = csv.DictReader(file)
    header = [(name or "").strip().lower() for name in reader.fieldnames or []]
    if not header:
        raise MessageImportError(["The file is empty: it needs a header row."])
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    problems = []
    if missing:
        problems.append(f"Row 1: missing column(s) {', '.join(missing)}.")
    if unknown:
        problems.append(f"Row 1: unknown column(s) {', '.join(unknown)}; the columns are {', '.join(CSV_COLUMNS)}.")
    if problems:
        raise MessageImportError(problems)
    reader.fieldnames = header
    rows = []
    for index, record in enumerate(reader, start=2):
        if None in record:
            problems.append(f"Row {index}: more values than columns.")
            continue
        values = {name: csv_cell_value(value or "") for name, value in record.items()}
        if any(value.strip() for value in values.values()):
            rows.append(_Row(index, values))
    if problems:
        raise MessageImportError(problems)
    return rows


def _file_reference(value: str) -> str:
    """An id, or the stored file name (a path or URL is reduced to its last part)."""
    value = value.strip()
    return value if value.isdigit() else PurePosixPath(value.split("?")[0]).name


def _binary_contents(rows: Iterable[_Row]) -> dict[str, BinaryContent]:
    """The files the rows name, by id and by stored file name, in two queries."""
    references = {_file_reference(row.values.get("binary_content", "")) for row in rows} - {""}
    ids = [int(reference) for reference in references if reference.isdigit()]
    names = [reference for reference in references if not reference.isdigit()]
    found: dict[str, BinaryContent] = {}
    for item in BinaryContent.objects.filter(pk__in=ids):
        found[str(item.pk)] = item
    for item in BinaryContent.objects.filter(content__in=names):
        found[item.content.name] = item
    return found


def _parse(row: _Row, messageset: MessageSet, existing: dict, files: dict) -> tuple[tuple, Message | None, list[str]]:
    """The row's position (sequence_number, lang), its message (new or existing) and its problems."""
    errors = []
    values = row.values
    raw_number = values["sequence_number"].strip()
    try:
        sequence_number = int(raw_number)
    except ValueError:
        sequence_number = None
        errors.append(f"sequence_number: {raw_number!r} is not a whole number.")
    lang = values["lang"].strip()
    metadata: object = {}
    raw_metadata = values.get("metadata", "").strip()
    if raw_metadata:
        try:
            metadata = json.loads(raw_metadata)
        except json.JSONDecodeError as error:
            errors.append(f"metadata: not valid JSON ({error.msg} at column {error.colno}).")
    binary_content = None
    reference = _file_reference(values.get("binary_content", ""))
    if reference:
        binary_content = files.get(reference)
        if binary_content is None:
            errors.append(f"binary_content: no binary content with id or file name {reference!r}.")
    position = (sequence_number, lang)
    if errors:  # the message would not validate meaningfully
        return position, None, errors
    message = existing.get(position) or Message(messageset=messageset)
    fields = {
        "sequence_number": sequence_number,
        "lang": lang,
        "text_content": values["text_content"] or None,
        "binary_content": binary_content,
        "metadata": metadata,
    }
    try:
        model_set_and_validate(message, fields, exclude=["messageset", "binary_content"], unique=False)
    except ValidationError as error:
        for field, messages in error.message_dict.items():
            prefix = "" if field == NON_FIELD_ERRORS else f"{field}: "
            errors.extend(f"{prefix}{text}" for text in messages)
    return position, message, errors


def message_import_csv(
    *,
    messageset: MessageSet,
    file: TextIO,
    replace: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Import the set's messages from CSV text: every row is checked before anything is written.

    Columns: sequence_number, lang, text_content, and optionally binary_content
    (an id or stored file name) and metadata (a JSON object). A row whose
    sequence_number and lang match an existing message updates it; others are
    created. With `replace`, the set's messages that the file does not list are
    deleted. Any bad row: MessageImportError listing every problem by row, and
    nothing is written.
    """
    try:
        rows = _read_rows(file)
    except UnicodeDecodeError as error:
        raise MessageImportError([f"The file is not UTF-8 text ({error.reason} at byte {error.start})."]) from None
    except csv.Error as error:
        raise MessageImportError([f"The file is not readable as CSV: {error}."]) from None

    report = progress or (lambda stage, done, total: None)
    existing = {(message.sequence_number, message.lang): message for message in messageset.messages.all()}
    files = _binary_contents(rows)
    problems: list[str] = []
    seen: dict[tuple, int] = {}
    to_create: list[Message] = []
    to_update: list[Message] = []
    for done, row in enumerate(rows, start=1):
        position, message, errors = _parse(row, messageset, existing, files)
        if not errors and position in seen:
            number, lang = position
            errors.append(f"sequence_number {number} in lang {lang!r} is also on row {seen[position]}.")
        seen.setdefault(position, row.number)
        problems.extend(f"Row {row.number}: {error}" for error in errors)
        if not errors:
            (to_update if message.pk else to_create).append(message)
        report("Checking", done, len(rows))
    if problems:
        raise MessageImportError(problems)

    with transaction.atomic():
        deleted = 0
        if replace:
            kept = {message.pk for message in to_update}
            deleted, _ = messageset.messages.exclude(pk__in=kept).delete()
        now = timezone.now()
        for message in to_update:
            message.updated_at = now
        total, done = len(to_update) + len(to_create), 0
        for start in range(0, len(to_update), WRITE_BATCH):
            batch = to_update[start : start + WRITE_BATCH]
            Message.objects.bulk_update(batch, ["text_content", "binary_content", "metadata", "updated_at"])
            done += len(batch)
            report("Writing", done, total)
        for start in range(0, len(to_create), WRITE_BATCH):
            batch = to_create[start : start + WRITE_BATCH]
            Message.objects.bulk_create(batch)
            done += len(batch)
            report("Writing", done, total)
    return ImportResult(created=len(to_create), updated=len(to_update), deleted=deleted)
