from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Delayed HTTP jobs"

    def ready(self) -> None:
        from . import schema  # noqa: F401 - registers the OpenAPI description of the apikey
