from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from django.db.models import UUIDField

        from .db import AnyOf

        UUIDField.register_lookup(AnyOf)
