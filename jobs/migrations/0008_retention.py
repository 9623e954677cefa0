"""Retention of finished jobs: the index it finds them by, and its periodic task.

The index is built without blocking writes on PostgreSQL (CREATE INDEX CONCURRENTLY,
so this migration is not atomic): the jobs table may be large and busy.
"""

from django.db import migrations, models

INDEX = models.Index(
    fields=["state", "finished_at"],
    name="jobs_job_finished",
    condition=models.Q(state__in=["succeeded", "failed", "cancelled"]),
)
TASK_NAME = "Prune finished jobs"


def add_index(apps, schema_editor):
    concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
    schema_editor.add_index(apps.get_model("jobs", "Job"), INDEX, **concurrently)


def remove_index(apps, schema_editor):
    concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
    schema_editor.remove_index(apps.get_model("jobs", "Job"), INDEX, **concurrently)


def create_task(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="17", hour="*", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "jobs.prune_finished",
            "crontab": crontab,
            "description": "Deletes finished jobs and their attempts past JOBS_RETENTION_DAYS "
            "(failed ones: JOBS_DEAD_RETENTION_DAYS).",
        },
    )


def delete_task(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0007_deduplication_and_batches"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="job", index=INDEX)],
            database_operations=[migrations.RunPython(add_index, remove_index)],
        ),
        migrations.RunPython(create_task, delete_task, atomic=True),
    ]
