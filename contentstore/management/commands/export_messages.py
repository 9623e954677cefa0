from django.core.management.base import BaseCommand

from contentstore import selectors

from ._messageset import find_messageset


class Command(BaseCommand):
    help = "Write a message set's messages as CSV, in the format import_messages reads."

    def add_arguments(self, parser) -> None:
        parser.add_argument("messageset", help="The message set's short name or id.")
        parser.add_argument("--output", "-o", help="The file to write (default: standard output).")

    def handle(self, *args, messageset: str, output: str | None, **options) -> None:
        target = find_messageset(messageset)
        if output:
            with open(output, "w", encoding="utf-8", newline="") as file:
                count = selectors.message_export_csv(messageset=target, file=file)
        else:
            count = selectors.message_export_csv(messageset=target, file=self.stdout)
        self.stderr.write(f"Exported {count} message(s) of {target}.")
