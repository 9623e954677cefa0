# ruff: noqa: S608 - the SQL is built from the models' table and column names only; values are COPYed
"""Adopting a deployment of the reference stage-based messaging store: its database, files and tokens.

`upstream_import` copies what the store's clients rely on into this service, keeping
the ids they hold (schedules, message sets, messages, binary content, subscriptions,
and the other records' too), so URLs they stored still resolve, and storing each
upstream token as this service's hashed token, so the Hub, the scheduler and
scripts keep the token they hold. It promises:

- constant memory at any size: each upstream table is streamed in id order through a
  server-side cursor, all from one read-only snapshot, in batches; a batch is COPYed
  into a temporary stage and merged with one INSERT ... ON CONFLICT DO UPDATE;
- idempotence and resumption: each batch commits on its own and the merge writes only
  rows that are new or differ, so a second run writes nothing, a run after upstream
  changed brings those changes, and a run after an interruption passes quickly over
  what was done and continues;
- nothing dropped silently: a row not written is counted under its reason; a dry run
  does all of it in one transaction that is rolled back, and copies no file.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from django.core.management.color import no_style
from django.db import connection, transaction

from accounts.models import ApiToken, User, token_digest
from accounts.scopes import ScopeSet
from accounts.services import user_grant
from contentstore.models import MessageSet, Schedule
from contentstore.services import schedule_sync_periodic_task

from .tables import SEQUENCED, TABLES, Skip, Table, TableReport

# Rows per batch: per COPY, merge and commit. Memory is bounded by it, not by the table.
BATCH_SIZE = 5000
# What an upstream token could do there: all of its messaging API; its admin operations (`user/token`)
# only for a staff user (DRF's IsAdminUser), as the accounts migration read plain users' tokens.
UPSTREAM_SCOPES = ScopeSet.parse(["messaging:write"])
UPSTREAM_STAFF_SCOPES = ScopeSet.parse(["messaging:admin"])
UPSTREAM_TOKEN_NAME = "upstream token"  # noqa: S105 - a label, not a secret
UNCHANGED = "already imported, unchanged"


def upstream_scopes(*, is_staff: bool) -> ScopeSet:
    """What a user's token could do upstream: the messaging API, and its admin operations for staff."""
    return UPSTREAM_STAFF_SCOPES if is_staff else UPSTREAM_SCOPES


@dataclass
class ImportedToken:
    username: str
    email: str
    prefix: str
    scopes: str
    status: str


@dataclass
class ImportReport:
    dry_run: bool
    tables: list[TableReport] = field(default_factory=list)
    tokens: list[ImportedToken] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _columns(names, prefix: str = "") -> str:
    return ", ".join(prefix + _quote(name) for name in names)


class Importer:
    """One run of the import; `upstream_import` is its interface."""

    def __init__(
        self,
        *,
        upstream: psycopg.Connection,
        media_root: Path | None,
        dry_run: bool,
        batch_size: int,
        progress: Callable[[TableReport], None],
    ):
        self.upstream = upstream
        self.media_root = media_root
        self.dry_run = dry_run
        self.batch_size = batch_size
        self.progress = progress
        self.report = ImportReport(dry_run=dry_run)
        self.users: dict[int, int] = {}  # upstream user id -> this service's
        self.staff: dict[int, bool] = {}  # upstream user id -> whether upstream's admin operations were theirs

    def run(self) -> ImportReport:
        self._users_and_tokens()
        for table in TABLES:
            self._table(table)
            if table.model is Schedule:
                self._schedule_tasks()
            elif table.model is MessageSet:
                self._next_sets()
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(no_style(), SEQUENCED):
                cursor.execute(statement)
        return self.report

    def _start(self, name: str, count_sql: str) -> TableReport:
        report = TableReport(name, total=self.upstream.execute(count_sql).fetchone()[0])
        self.report.tables.append(report)
        return report

    # --- Users and tokens ------------------------------------------------------

    def _users_and_tokens(self) -> None:
        """Each upstream user by username (one already here is kept as it is), granted what upstream let
        them do; each token stored as its digest, holding just that."""
        report = self._start("auth_user", "SELECT count(*) FROM auth_user")
        started = time.monotonic()
        rows = self.upstream.execute(
            "SELECT id, username, email, password, first_name, last_name, is_staff, is_superuser, is_active, "
            "date_joined, last_login FROM auth_user ORDER BY id"
        ).fetchall()
        for pk, username, email, password, first, last, staff, superuser, active, joined, last_login in rows:
            report.read += 1
            with transaction.atomic():
                user = User.objects.filter(username=username).first()
                if user is None:
                    user = User.objects.create(
                        username=username,
                        email=email,
                        password=password,
                        first_name=first,
                        last_name=last,
                        is_staff=staff,
                        is_superuser=superuser,
                        is_active=active,
                        date_joined=joined,
                        last_login=last_login,
                    )
                    report.written += 1
                else:
                    report.skipped["a user of that username is here already (kept as it is)"] += 1
                user_grant(user=user, scopes=upstream_scopes(is_staff=staff or superuser))
            self.users[pk] = user.pk
            self.staff[pk] = staff or superuser
        report.seconds = time.monotonic() - started
        self.progress(report)
        self._tokens()

    def _tokens(self) -> None:
        report = self._start("authtoken_token", "SELECT count(*) FROM authtoken_token")
        started = time.monotonic()
        rows = self.upstream.execute(
            "SELECT t.key, t.created, t.user_id FROM authtoken_token t ORDER BY t.user_id"
        ).fetchall()
        for key, created, user_pk in rows:
            report.read += 1
            user = User.objects.get(pk=self.users[user_pk])
            digest = token_digest(key)
            scopes = upstream_scopes(is_staff=self.staff[user_pk])
            if ApiToken.objects.filter(digest=digest).exists():
                report.skipped[UNCHANGED] += 1
                status = "imported before"
            else:
                token = ApiToken.objects.create(
                    user=user,
                    name=UPSTREAM_TOKEN_NAME,
                    prefix=key[: ApiToken.PREFIX_LENGTH],
                    digest=digest,
                    scopes=scopes.as_json(),
                )
                ApiToken.objects.filter(pk=token.pk).update(created_at=created)  # not the import's time
                report.written += 1
                status = "imported"
            if not user.is_active:
                status += "; its user is inactive, so it is refused, as upstream refused it"
            self.report.tokens.append(
                ImportedToken(user.username, user.email, key[: ApiToken.PREFIX_LENGTH], str(scopes), status)
            )
        report.seconds = time.monotonic() - started
        self.progress(report)

    # --- Tables ----------------------------------------------------------------

    def _table(self, table: Table) -> None:
        report = self._start(table.upstream, f"SELECT count(*) FROM {table.upstream}")
        stage = f"import_stage_{table.target}"
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {stage}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {stage} AS SELECT {_columns(table.columns)} FROM {table.target} WITH NO DATA"
            )
            with self.upstream.cursor(name=f"import_{table.upstream}") as source:
                source.itersize = self.batch_size
                source.execute(table.select)
                while rows := source.fetchmany(self.batch_size):
                    report.read += len(rows)
                    rows = self._converted(table, rows, report)
                    with transaction.atomic():
                        self._merge(cursor, table, stage, rows, report)
                    report.seconds = time.monotonic() - started
                    self.progress(report)
            cursor.execute(f"DROP TABLE {stage}")
        report.seconds = time.monotonic() - started
        self.progress(report)

    def _converted(self, table: Table, rows: list[tuple], report: TableReport) -> list[tuple]:
        if table.convert is None:
            return rows
        converted = []
        for row in rows:
            try:
                converted.append(table.convert(self, row, report))
            except Skip as skip:
                report.skipped[str(skip)] += 1
        return converted

    def _merge(self, cursor, table: Table, stage: str, rows: list[tuple], report: TableReport) -> None:
        """Stage the batch, set aside what cannot be written, and write what is new or differs."""
        cursor.execute(f"TRUNCATE {stage}")
        with cursor.copy(f"COPY {stage} ({_columns(table.columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        for column, parent in table.parents:
            cursor.execute(
                f"DELETE FROM {stage} s WHERE s.{_quote(column)} IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {parent._meta.db_table} p WHERE p.id = s.{_quote(column)})"
            )
            if cursor.rowcount:
                report.skipped[f"{column} refers to a {parent._meta.verbose_name} not imported"] += cursor.rowcount
        for key in table.unique:
            cursor.execute(
                f"DELETE FROM {stage} s USING {table.target} t WHERE ({_columns(key, 't.')}) = "
                f"({_columns(key, 's.')}) AND t.id <> s.id"
            )
            if cursor.rowcount:
                report.skipped[f"another {table.model._meta.verbose_name} here has its {', '.join(key)}"] += (
                    cursor.rowcount
                )
        for condition, meaning in table.notes:
            cursor.execute(f"SELECT count(*) FROM {stage} WHERE {condition}")
            report.notes[meaning] += cursor.fetchone()[0]
        cursor.execute(f"SELECT count(*) FROM {stage}")
        staged = cursor.fetchone()[0]
        changing = [name for name in table.columns if name != "id"]
        cursor.execute(
            f"INSERT INTO {table.target} AS t ({_columns(table.columns)}) "
            f"SELECT {_columns(table.columns)} FROM {stage} "
            f"ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{_quote(name)} = EXCLUDED.{_quote(name)}" for name in changing)
            + f" WHERE ({_columns(changing, 't.')}) IS DISTINCT FROM ({_columns(changing, 'EXCLUDED.')})"
        )
        report.written += cursor.rowcount
        if staged - cursor.rowcount:
            report.skipped[UNCHANGED] += staged - cursor.rowcount

    # --- What follows some tables ---------------------------------------------

    def _schedule_tasks(self) -> None:
        """Each imported schedule's periodic task here, made or corrected when it is not in step."""
        ids = [pk for (pk,) in self.upstream.execute("SELECT id FROM contentstore_schedule").fetchall()]
        report = self.report.tables[-1]
        for schedule in Schedule.objects.filter(pk__in=ids).select_related("periodic_task__crontab"):
            task = schedule.periodic_task
            crontab = task.crontab if task is not None else None
            if (
                crontab is None
                or not task.enabled
                or any(getattr(crontab, name) != value for name, value in schedule.cron_fields.items())
            ):
                schedule_sync_periodic_task(schedule=schedule)
                report.notes["periodic task made or corrected"] += 1

    def _next_sets(self) -> None:
        """`next_set` once every set is here (a set may name a later one, or itself)."""
        report = self.report.tables[-1]
        links = dict(
            self.upstream.execute("SELECT id, next_set_id FROM contentstore_messageset ORDER BY id").fetchall()
        )
        here = dict(MessageSet.objects.filter(pk__in=links).values_list("pk", "next_set_id"))
        for pk, next_set in links.items():
            if pk not in here or here[pk] == next_set:
                continue
            if next_set is not None and next_set not in here:
                report.notes["next_set names a set not imported (left empty)"] += 1
                continue
            MessageSet.objects.filter(pk=pk).update(next_set_id=next_set)
            report.notes["next_set linked"] += 1


class UpstreamUnreadable(Exception):
    """The upstream database cannot be reached or is not shaped like the store's."""


def upstream_import(
    *,
    url: str,
    media_root: Path | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[TableReport], None] = lambda report: None,
) -> ImportReport:
    """Import the upstream store's database at `url` (and its files under `media_root`).

    Without `dry_run` each batch is committed as it is merged; an exception leaves what
    was committed, and running it again continues. With it, nothing is kept.
    """
    try:
        upstream = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as error:
        raise UpstreamUnreadable(f"Cannot connect to the upstream database: {error}".strip()) from None
    with upstream:
        upstream.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot for every table
        upstream.read_only = True
        importer = Importer(
            upstream=upstream, media_root=media_root, dry_run=dry_run, batch_size=batch_size, progress=progress
        )
        try:
            if not dry_run:
                return importer.run()
            with transaction.atomic():
                report = importer.run()
                transaction.set_rollback(True)
                return report
        except psycopg.errors.UndefinedTable as error:
            raise UpstreamUnreadable(
                f"The upstream database is not shaped like the store's: {error.diag.message_primary}."
            ) from None
