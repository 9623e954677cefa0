from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Delayed HTTP jobs"

    def ready(self) -> None:
        from core.outbound import parse_networks

        from . import schema  # noqa: F401 - registers the OpenAPI description of the apikey

        try:
            ZoneInfo(settings.JOBS_TIME_ZONE)
        except (ZoneInfoNotFoundError, ValueError):
            raise ImproperlyConfigured(
                f"JOBS_TIME_ZONE must be a time zone name such as UTC or Europe/Paris, not {settings.JOBS_TIME_ZONE!r}."
            ) from None
        try:
            parse_networks(settings.OUTBOUND_ALLOWED_NETWORKS)
        except ValueError as error:
            raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_NETWORKS: {error}") from None
