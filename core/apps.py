from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from django.db.models import UUIDField

        from .db import AnyOf

        UUIDField.register_lookup(AnyOf)

        from django.conf import settings

        if settings.OTEL_EXPORTER_OTLP_ENDPOINT:  # off, nothing of OpenTelemetry is imported
            from .tracing import tracing_start

            tracing_start()
