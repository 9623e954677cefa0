# ruff: noqa: S608 - the conditions are the module's own SQL
"""The upstream store's tables and how each becomes one of this service's (`Table`), in the order
they are imported: a table's rows may refer only to tables before it (a set's `next_set` is
linked after every set is here).
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.db import models

from contentstore.models import BinaryContent, Message, MessageSet, Schedule
from contentstore.validators import cron_field
from subscriptions.models import (
    BehindSubscription,
    EstimatedSend,
    ResendRequest,
    Subscription,
    SubscriptionSendFailure,
)

from . import files

if TYPE_CHECKING:
    from .services import Importer


class Skip(Exception):
    """A row that is not imported; the message says why (rows are counted by reason)."""


@dataclass
class TableReport:
    """What happened to one upstream table's rows."""

    name: str
    total: int = 0
    read: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Table:
    """How one upstream table becomes one of this service's.

    `select` yields the target `columns` in order, in id order. Rows whose `parents`
    (column, model) are missing here, or whose other `unique` keys a different row
    holds here, are skipped; `notes` count rows written that deserve a look, by an
    SQL condition on the stage.
    """

    upstream: str
    model: type[models.Model]
    columns: tuple[str, ...]
    select: str
    parents: tuple[tuple[str, type[models.Model]], ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()
    notes: tuple[tuple[str, str], ...] = ()
    convert: Callable | None = None

    @property
    def target(self) -> str:
        return self.model._meta.db_table


def _schedule_row(importer: "Importer", row: tuple, report: TableReport) -> tuple:
    """Cron fields as upstream read them (spaces removed), checked as this service checks them."""
    pk, *values = row
    cron = [cron_field(value) for value in values]
    try:
        for name, value in zip(CRON_COLUMNS, cron, strict=True):
            Schedule._meta.get_field(name).run_validators(value)
    except ValidationError as error:
        raise Skip(f"invalid cron field: {' '.join(error.messages)}") from None
    return (pk, *cron)


def _binary_content_row(importer: "Importer", row: tuple, report: TableReport) -> tuple:
    pk, name, created_at, updated_at = row
    stored, problem = files.binary_content_copy(
        pk=pk, name=name, media_root=importer.media_root, dry_run=importer.dry_run
    )
    if problem is not None:
        report.notes[problem.kind] += 1
        importer.report.problems.append(problem.detail)
    return pk, stored, created_at, updated_at


def _subscription_row(importer: "Importer", row: tuple, report: TableReport) -> tuple:
    *fields, created_by, updated_by = row
    return (*fields, importer.users.get(created_by), importer.users.get(updated_by))


CRON_COLUMNS = ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
NO_TEXT_OR_FILE = "coalesce(text_content, '') = '' AND binary_content_id IS NULL"

TABLES = (
    Table(
        "contentstore_schedule",
        Schedule,
        ("id", *CRON_COLUMNS),
        f"SELECT id, {', '.join(CRON_COLUMNS)} FROM contentstore_schedule ORDER BY id",
        convert=_schedule_row,
    ),
    Table(
        "contentstore_messageset",
        MessageSet,
        (
            "id",
            "short_name",
            "label",
            "notes",
            "channel",
            "default_schedule_id",
            "content_type",
            "created_at",
            "updated_at",
        ),
        "SELECT id, short_name, label, notes, channel, default_schedule_id, content_type, created_at, updated_at "
        "FROM contentstore_messageset ORDER BY id",
        parents=(("default_schedule_id", Schedule),),
        unique=(("short_name",),),
    ),
    Table(
        "contentstore_binarycontent",
        BinaryContent,
        ("id", "content", "created_at", "updated_at"),
        "SELECT id, content, created_at, updated_at FROM contentstore_binarycontent ORDER BY id",
        convert=_binary_content_row,
    ),
    Table(
        "contentstore_message",
        Message,
        (
            "id",
            "messageset_id",
            "sequence_number",
            "lang",
            "text_content",
            "binary_content_id",
            "metadata",
            "created_at",
            "updated_at",
        ),
        "SELECT id, messageset_id, sequence_number, lang, text_content, binary_content_id, "
        "coalesce(metadata, '{}')::text, created_at, updated_at FROM contentstore_message ORDER BY id",
        parents=(("messageset_id", MessageSet), ("binary_content_id", BinaryContent)),
        unique=(("messageset_id", "sequence_number", "lang"),),
        notes=((NO_TEXT_OR_FILE, "message without text or file (kept; its sends fail, as upstream)"),),
    ),
    Table(
        "subscriptions_subscription",
        Subscription,
        (
            "id",
            "identity",
            "version",
            "messageset_id",
            "initial_sequence_number",
            "next_sequence_number",
            "lang",
            "active",
            "completed",
            "schedule_id",
            "process_status",
            "metadata",
            "created_at",
            "updated_at",
            "created_by_id",
            "updated_by_id",
        ),
        "SELECT id, identity, version, messageset_id, initial_sequence_number, next_sequence_number, lang, "
        "active, completed, schedule_id, process_status, metadata::text, created_at, updated_at, "
        "created_by_id, updated_by_id FROM subscriptions_subscription ORDER BY id",
        parents=(("messageset_id", MessageSet), ("schedule_id", Schedule)),
        convert=_subscription_row,
    ),
    Table(
        "subscriptions_subscriptionsendfailure",
        SubscriptionSendFailure,
        ("id", "subscription_id", "task_id", "initiated_at", "reason"),
        "SELECT id, subscription_id, task_id, initiated_at, reason FROM subscriptions_subscriptionsendfailure "
        "ORDER BY id",
        parents=(("subscription_id", Subscription),),
    ),
    Table(
        "subscriptions_estimatedsend",
        EstimatedSend,
        ("id", "send_date", "messageset_id", "estimate_subscriptions", "estimate_identities"),
        "SELECT id, send_date, messageset_id, estimate_subscriptions, estimate_identities "
        "FROM subscriptions_estimatedsend ORDER BY id",
        parents=(("messageset_id", MessageSet),),
        unique=(("send_date", "messageset_id"),),
    ),
    Table(
        "subscriptions_resendrequest",
        ResendRequest,
        ("id", "received_at", "subscription_id", "outbound", "message_id"),
        "SELECT id, received_at, subscription_id, outbound, message_id FROM subscriptions_resendrequest ORDER BY id",
        parents=(("subscription_id", Subscription), ("message_id", Message)),
    ),
    Table(
        "subscriptions_behindsubscription",
        BehindSubscription,
        (
            "id",
            "subscription_id",
            "messages_behind",
            "current_messageset_id",
            "current_sequence_number",
            "expected_messageset_id",
            "expected_sequence_number",
            "created_at",
        ),
        "SELECT id, subscription_id, messages_behind, current_messageset_id, current_sequence_number, "
        "expected_messageset_id, expected_sequence_number, created_at FROM subscriptions_behindsubscription "
        "ORDER BY id",
        parents=(
            ("subscription_id", Subscription),
            ("current_messageset_id", MessageSet),
            ("expected_messageset_id", MessageSet),
        ),
    ),
)
# The tables whose ids come from upstream: their sequences are moved past the imported ids.
SEQUENCED = [table.model for table in TABLES if table.model is not Subscription]
