import sys

from django.apps import apps
from django.db.migrations.loader import MigrationLoader
from django_celery_beat.models import PeriodicTask


def periodic_task_of_migration(app_label: str, name: str) -> PeriodicTask:
    """The periodic task `name` that a data migration of `app_label` registers (its `create_task`), as
    the migration leaves it: run again here, since a transactional test before may have emptied the table."""
    for (label, _), migration in MigrationLoader(None, ignore_no_migrations=True).disk_migrations.items():
        module = sys.modules[type(migration).__module__]
        if label == app_label and getattr(module, "TASK_NAME", None) == name:
            module.create_task(apps, None)
            return PeriodicTask.objects.get(name=name)
    raise LookupError(f"No migration of {app_label} registers the periodic task {name!r}")
