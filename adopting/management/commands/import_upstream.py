"""Copy a deployment of the reference stage-based messaging store into this service (docs/adopting.md)."""

import time
from pathlib import Path

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from adopting.services import BATCH_SIZE, ImportReport, TableReport, UpstreamUnreadable, upstream_import

# Seconds between two progress lines of the same table.
PROGRESS_EVERY = 2.0


class Command(BaseCommand):
    help = (
        "Import the upstream store's database (schedules, message sets, messages, binary content and their files, "
        "subscriptions and their records, users and their tokens), keeping the ids and tokens its clients hold. "
        "Run it again to continue after an interruption, or to bring later changes: nothing is duplicated."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--from", dest="source", required=True, metavar="URL", help="The upstream database: postgres://..."
        )
        parser.add_argument(
            "--media-root", type=Path, metavar="PATH", help="The upstream's media root, where its files are."
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; keep nothing.")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="Rows per batch (default %(default)s).")

    def handle(self, *args, source: str, media_root: Path | None, dry_run: bool, batch_size: int, **options):
        if connection.vendor != "postgresql":
            raise CommandError("The import writes with PostgreSQL's COPY: run it with DATABASE_URL set to PostgreSQL.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if media_root is not None and not media_root.is_dir():
            raise CommandError(f"--media-root {media_root} is not a directory.")
        shown: dict[str, tuple[float, int]] = {}  # per table: when its last line was written, and at what count

        def progress(report: TableReport) -> None:
            now = time.monotonic()
            at, read = shown.get(report.name, (0.0, -1))
            if read == report.read or (report.read < report.total and now - at < PROGRESS_EVERY):
                return
            shown[report.name] = now, report.read
            self.stderr.write(
                f"{report.name}: {report.read}/{report.total} read, {report.written} written, "
                f"{report.skipped_total} skipped, {report.rate:,.0f} rows/s"
            )

        try:
            report = upstream_import(
                url=source, media_root=media_root, dry_run=dry_run, batch_size=batch_size, progress=progress
            )
        except UpstreamUnreadable as error:
            raise CommandError(str(error)) from None
        except psycopg.Error as error:
            raise CommandError(
                f"The import stopped: {error}. What was written stays; run the command again to continue."
            ) from None
        self._report(report)

    def _report(self, report: ImportReport) -> None:
        out = self.stdout.write
        out("Dry run: nothing was kept. Rows that would be written:" if report.dry_run else "Import finished.")
        out(f"{'table':<40} {'read':>9} {'written':>9} {'skipped':>9} {'seconds':>8} {'rows/s':>9}")
        for table in report.tables:
            out(
                f"{table.name:<40} {table.read:>9} {table.written:>9} {table.skipped_total:>9} "
                f"{table.seconds:>8.1f} {table.rate:>9,.0f}"
            )
        for table in report.tables:
            for reason, count in table.skipped.most_common():
                out(f"  {table.name}: {count} skipped: {reason}")
            for note, count in table.notes.most_common():
                out(f"  {table.name}: {count} {note}")
        out(f"Tokens ({len(report.tokens)}), each kept by its holder as it was:")
        for token in report.tokens:
            out(f"  {token.prefix}... of {token.username} <{token.email}>: {token.scopes}; {token.status}")
        if report.problems:
            out(f"Problems ({len(report.problems)}):")
            for problem in report.problems:
                out(f"  {problem}")
