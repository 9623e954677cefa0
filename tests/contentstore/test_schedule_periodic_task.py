import io
import json
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from config.celery import app as celery_app
from contentstore import services
from contentstore.errors import ContentInUse

from .factories import fire_tasks, make_messageset, make_schedule

pytestmark = pytest.mark.django_db


def crontab_fields(task: PeriodicTask) -> tuple:
    crontab = task.crontab
    return (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week)


def test_a_new_schedule_owns_a_crontab_task_that_fires_it():
    schedule = make_schedule(minute="15", hour="6", day_of_week="mon-fri")
    task = fire_tasks().get()
    assert schedule.periodic_task == task
    assert task.task == "subscriptions.send_schedule"
    assert json.loads(task.args) == [schedule.pk]
    assert task.enabled
    assert crontab_fields(task) == ("15", "6", "*", "*", "mon-fri")
    assert str(task.crontab.timezone) == "UTC"


def test_the_crontab_runs_in_the_schedule_time_zone(settings):
    settings.SCHEDULE_TIME_ZONE = "Africa/Johannesburg"
    schedule = make_schedule()
    assert str(schedule.periodic_task.crontab.timezone) == "Africa/Johannesburg"


def test_the_crontab_task_follows_an_update():
    schedule = make_schedule()
    crontab_id = schedule.periodic_task.crontab_id
    services.schedule_update(schedule=schedule, hour="20", day_of_week="*")
    task = fire_tasks().get()
    assert crontab_fields(task) == ("0", "20", "*", "*", "*")
    assert task.crontab_id == crontab_id


def test_an_invalid_update_leaves_the_crontab_task_as_it_was():
    schedule = make_schedule()
    with pytest.raises(ValidationError) as raised:
        services.schedule_update(schedule=schedule, minute="99")
    assert list(raised.value.message_dict) == ["minute"]
    assert crontab_fields(fire_tasks().get()) == ("0", "8", "*", "*", "1")


def test_the_crontab_task_goes_with_its_schedule():
    schedule = make_schedule()
    crontab_id = schedule.periodic_task.crontab_id
    services.schedule_delete(schedule=schedule)
    assert not fire_tasks().exists()
    assert not CrontabSchedule.objects.filter(pk=crontab_id).exists()


def test_a_refused_delete_keeps_the_crontab_task():
    schedule = make_schedule()
    make_messageset(schedule=schedule)
    with pytest.raises(ContentInUse):
        services.schedule_delete(schedule=schedule)
    assert PeriodicTask.objects.filter(pk=schedule.periodic_task_id).exists()


def test_a_lost_crontab_task_is_made_again_on_the_next_update():
    schedule = make_schedule()
    fire_tasks().delete()
    schedule.refresh_from_db()
    assert schedule.periodic_task is None
    services.schedule_update(schedule=schedule, minute="5")
    schedule.refresh_from_db()
    assert crontab_fields(schedule.periodic_task) == ("5", "8", "*", "*", "1")


def test_the_scheduler_reads_the_crontab_task():
    schedule = make_schedule(minute="30", hour="7", day_of_week="*")
    entry = DatabaseScheduler.Entry(fire_tasks().get(), app=celery_app)
    assert entry.name == f"Fire schedule {schedule.pk}"
    assert entry.task == "subscriptions.send_schedule"
    assert entry.args == [schedule.pk]
    due_after = entry.schedule.remaining_delta(datetime(2030, 1, 1, 6, 0, tzinfo=UTC))
    start, remaining, _ = due_after
    assert start + remaining == datetime(2030, 1, 1, 7, 30, tzinfo=UTC)


def test_it_lists_the_next_run_times_in_the_schedule_zone(settings):
    settings.SCHEDULE_TIME_ZONE = "Africa/Johannesburg"
    schedule = make_schedule(minute="0", hour="8", day_of_week="2,4")
    times = schedule.run_times(count=3, after=datetime(2016, 11, 1, 12, 0, tzinfo=UTC))
    assert [time.isoformat() for time in times] == [
        "2016-11-03T08:00:00+02:00",
        "2016-11-08T08:00:00+02:00",
        "2016-11-10T08:00:00+02:00",
    ]


def test_sync_schedules_remakes_lost_tasks_and_applies_a_new_time_zone(settings):
    kept, lost = make_schedule(minute="1"), make_schedule(minute="2")
    PeriodicTask.objects.filter(pk=lost.periodic_task_id).delete()
    settings.SCHEDULE_TIME_ZONE = "Africa/Lagos"
    out = io.StringIO()
    call_command("sync_schedules", stdout=out)
    assert out.getvalue() == "Scheduler tasks in step for 2 schedule(s).\n"
    for schedule in (kept, lost):
        schedule.refresh_from_db()
        assert str(schedule.periodic_task.crontab.timezone) == "Africa/Lagos"
    assert fire_tasks().count() == 2
