"""The index of recurring jobs' run times states the condition of every query that uses it (recurring,
scheduled, with a run time), so that PostgreSQL's planner takes it even before the table has statistics;
with only `next_run_at IS NOT NULL`, a table that had just grown was read whole at every dispatcher turn.

Built without blocking writes on PostgreSQL (CREATE INDEX CONCURRENTLY, so this migration is not atomic).
"""

from django.db import migrations, models

BEFORE = models.Index(
    fields=["next_run_at"], name="jobs_job_recurring_due", condition=models.Q(next_run_at__isnull=False)
)
AFTER = models.Index(
    fields=["next_run_at"],
    name="jobs_job_recurring_due",
    condition=models.Q(kind="recurring", state="scheduled", next_run_at__isnull=False),
)


def _replace(schema_editor, Job, old: models.Index, new: models.Index) -> None:
    concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
    schema_editor.remove_index(Job, old, **concurrently)
    schema_editor.add_index(Job, new, **concurrently)


def forwards(apps, schema_editor):
    _replace(schema_editor, apps.get_model("jobs", "Job"), BEFORE, AFTER)


def backwards(apps, schema_editor):
    _replace(schema_editor, apps.get_model("jobs", "Job"), AFTER, BEFORE)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("jobs", "0009_queues")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="job", name="jobs_job_recurring_due"),
                migrations.AddIndex(model_name="job", index=AFTER),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
