"""Schedules' periodic tasks run the send pipeline's task directly.

They ran `contentstore.tasks.schedule_fire`, which only passed the schedule on to
`subscriptions.send_schedule`; rows written before keep firing after the rename.
"""

from django.db import migrations

OLD_TASK = "contentstore.tasks.schedule_fire"
NEW_TASK = "subscriptions.send_schedule"


def forwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=OLD_TASK).update(task=NEW_TASK)


def backwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task=NEW_TASK, content_schedule__isnull=False).update(task=OLD_TASK)


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0003_daily_send_estimate_task"),
        ("contentstore", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
