"""Beat's scheduler rides out a database that cannot be reached while it reads the schedules."""

import pytest
from django.db import OperationalError
from django_celery_beat import schedulers

from config.celery import app as celery_app
from core.beat import RETRY_SECONDS, DatabaseScheduler
from tests.contentstore.factories import make_schedule

pytestmark = pytest.mark.django_db(transaction=True)


def test_beat_uses_it():
    assert celery_app.conf.beat_scheduler == "core.beat:DatabaseScheduler"


def test_a_failed_read_of_the_schedules_is_retried_and_then_read_in_full(monkeypatch):
    scheduler = DatabaseScheduler(app=celery_app)
    scheduler.tick()  # the initial read

    schedule = make_schedule(minute="*", hour="*", day_of_week="*")  # a change beat must see, due every minute
    real_read = schedulers.DatabaseScheduler.all_as_schedule

    def unreachable(self):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(schedulers.DatabaseScheduler, "all_as_schedule", unreachable)
    assert scheduler.tick() == RETRY_SECONDS  # not an exception, which would end beat

    monkeypatch.setattr(schedulers.DatabaseScheduler, "all_as_schedule", real_read)
    scheduler.tick()
    assert f"Fire schedule {schedule.pk}" in scheduler.schedule
