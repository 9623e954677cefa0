import argparse
import sys

from django.core.management.base import BaseCommand, CommandError

from contentstore import services
from contentstore.errors import MessageImportError
from contentstore.management.progress import ProgressBar

from ._messageset import find_messageset


class Command(BaseCommand):
    help = (
        "Import a message set's messages from a CSV file (columns sequence_number, lang, text_content; "
        "optional binary_content, an id or stored file name, and metadata, a JSON object). "
        "Every row is checked first: any bad row and nothing is written."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("messageset", help="The message set's short name or id.")
        parser.add_argument("csv_file", help="The CSV file (UTF-8), or - for standard input.")
        parser.add_argument(
            "--replace", action="store_true", help="Also delete the set's messages that the file does not list."
        )
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Show a progress bar (default: when standard error is a terminal).",
        )

    def handle(self, *args, messageset: str, csv_file: str, replace: bool, progress: bool | None, **options):
        target = find_messageset(messageset)
        if progress is None:
            progress = self.stderr.isatty()
        bar = ProgressBar(self.stderr) if progress else None
        try:
            if csv_file == "-":
                sys.stdin.reconfigure(encoding="utf-8-sig", newline="")
                result = self._import(target, sys.stdin, replace, bar)
            else:
                try:
                    file = open(csv_file, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
                except OSError as error:
                    raise CommandError(f"Cannot read {csv_file}: {error.strerror}.") from None
                with file:
                    result = self._import(target, file, replace, bar)
        finally:
            if bar is not None:
                bar.finish()
        self.stdout.write(
            f"Imported into {target}: {result.created} created, {result.updated} updated, {result.deleted} deleted."
        )

    def _import(self, messageset, file, replace, bar):
        try:
            return services.message_import_csv(messageset=messageset, file=file, replace=replace, progress=bar)
        except MessageImportError as error:
            if bar is not None:
                bar.finish()
            for problem in error.errors:
                self.stderr.write(problem)
            raise CommandError(str(error)) from None
