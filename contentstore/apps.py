from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class ContentstoreConfig(AppConfig):
    name = "contentstore"
    verbose_name = "Content store"

    def ready(self) -> None:
        try:
            ZoneInfo(settings.SCHEDULE_TIME_ZONE)
        except (ZoneInfoNotFoundError, ValueError):
            raise ImproperlyConfigured(
                "SCHEDULE_TIME_ZONE must be a time zone name such as UTC or Africa/Johannesburg, "
                f"not {settings.SCHEDULE_TIME_ZONE!r}."
            ) from None
