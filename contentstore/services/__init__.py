"""Writes and business rules of the content store (keyword-only, `<entity>_<action>`)."""

from .content import (
    DUPLICATE_MESSAGE,
    binary_content_create,
    binary_content_delete,
    binary_content_update,
    message_create,
    message_delete,
    message_update,
    messageset_clone,
    messageset_create,
    messageset_delete,
    messageset_update,
)
from .message_csv import CSV_COLUMNS, ImportResult, message_import_csv
from .schedules import (
    schedule_create,
    schedule_delete,
    schedule_sync_periodic_task,
    schedule_update,
)
from .writes import BINARY_CONTENT_WRITES, MESSAGE_WRITES, MESSAGESET_WRITES, SCHEDULE_WRITES, Writes

__all__ = [
    "BINARY_CONTENT_WRITES",
    "CSV_COLUMNS",
    "DUPLICATE_MESSAGE",
    "MESSAGESET_WRITES",
    "MESSAGE_WRITES",
    "SCHEDULE_WRITES",
    "ImportResult",
    "Writes",
    "binary_content_create",
    "binary_content_delete",
    "binary_content_update",
    "message_create",
    "message_delete",
    "message_import_csv",
    "message_update",
    "messageset_clone",
    "messageset_create",
    "messageset_delete",
    "messageset_update",
    "schedule_create",
    "schedule_delete",
    "schedule_sync_periodic_task",
    "schedule_update",
]
