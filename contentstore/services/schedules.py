"""Schedules and the periodic task each one owns, created, changed and deleted together."""

import json

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from core.services import model_set_and_validate

from ..models import Schedule
from .common import delete_unless_in_use


@transaction.atomic
def schedule_create(
    *,
    minute: str = "*",
    hour: str = "*",
    day_of_week: str = "*",
    day_of_month: str = "*",
    month_of_year: str = "*",
) -> Schedule:
    """A new schedule, with the periodic task that fires it."""
    cron_fields = {
        "minute": minute,
        "hour": hour,
        "day_of_week": day_of_week,
        "day_of_month": day_of_month,
        "month_of_year": month_of_year,
    }
    schedule = model_set_and_validate(Schedule(), cron_fields, exclude=["periodic_task"])
    schedule.save()
    schedule_sync_periodic_task(schedule=schedule)
    return schedule


@transaction.atomic
def schedule_update(*, schedule: Schedule, **cron_fields: str) -> Schedule:
    """Change some of the schedule's cron fields; its periodic task follows."""
    model_set_and_validate(schedule, cron_fields, exclude=["periodic_task"])
    schedule.save()
    schedule_sync_periodic_task(schedule=schedule)
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: Schedule) -> None:
    """Delete the schedule and its periodic task, unless message sets or subscriptions use it."""
    task = schedule.periodic_task
    delete_unless_in_use(schedule)
    if task is not None:
        crontab = task.crontab
        task.delete()
        if crontab is not None and not crontab.periodictask_set.exists():
            crontab.delete()


def _describe(schedule: Schedule) -> str:
    return (
        f"Queues the send of content store schedule {schedule.pk} ({schedule.cron_string}, "
        f"{settings.SCHEDULE_TIME_ZONE}). Kept in step with the schedule: edit the schedule, not this task."
    )


@transaction.atomic
def schedule_sync_periodic_task(*, schedule: Schedule) -> PeriodicTask:
    """Create or correct the crontab periodic task that fires `schedule`, in SCHEDULE_TIME_ZONE."""
    cron = {**schedule.cron_fields, "timezone": settings.SCHEDULE_TIME_ZONE}
    task = schedule.periodic_task
    crontab = task.crontab if task is not None else None
    if crontab is None:
        crontab = CrontabSchedule.objects.create(**cron)
    else:
        for name, value in cron.items():
            setattr(crontab, name, value)
        crontab.save()
    if task is None:
        name = f"Fire schedule {schedule.pk}"
        task = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    task.task = settings.SCHEDULE_FIRE_TASK
    task.args = json.dumps([schedule.pk])
    task.kwargs = "{}"
    task.crontab = crontab
    task.interval = task.solar = task.clocked = None
    task.one_off = False
    task.enabled = True
    task.description = _describe(schedule)
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])
    return task
