from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from cache_api import services


class Command(BaseCommand):
    help = "Create a cache (does nothing when it exists)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--max-item-bytes", type=int, help="Largest item (key + value) in bytes.")
        parser.add_argument("--max-ttl-seconds", type=int, help="Longest TTL in seconds.")

    def handle(self, *args, name: str, max_item_bytes, max_ttl_seconds, **options) -> None:
        for option, value in (("--max-item-bytes", max_item_bytes), ("--max-ttl-seconds", max_ttl_seconds)):
            if value is not None and value < 1:
                raise CommandError(f"{option} must be a positive number.")
        try:
            _, created = services.cache_create(
                name=name, max_item_bytes=max_item_bytes, max_ttl_seconds=max_ttl_seconds
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"Created cache {name}." if created else f"Cache {name} exists.")
