from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Delayed HTTP jobs"

    def ready(self) -> None:
        from core.metrics import registry

        from . import schema  # noqa: F401 - registers the OpenAPI description of the apikey
        from .metrics import JobsCollector

        registry.register(JobsCollector())
