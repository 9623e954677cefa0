from django.conf import settings
from django.db import migrations

TASK_NAME = "Prune finished send runs"


def create_task(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="47",
        hour="1",
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone=settings.SCHEDULE_TIME_ZONE,
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "subscriptions.prune_send_runs",
            "crontab": crontab,
            "description": "Deletes finished schedule sends (SendRun) past SEND_RUN_RETENTION_DAYS.",
        },
    )


def delete_task(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0004_schedule_fire_task"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_task, delete_task)]
