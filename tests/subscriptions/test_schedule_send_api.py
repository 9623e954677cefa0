"""`POST schedule/{id}/send/` and the task every schedule's periodic task runs: one path to the pipeline."""

import logging

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from subscriptions import tasks

from .factories import make_schedule

pytestmark = pytest.mark.django_db

URL = "/api/v1/schedule/"


def test_send_queues_the_schedules_send_once_the_transaction_commits(writer, django_capture_on_commit_callbacks):
    schedule = make_schedule()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = writer.post(f"{URL}{schedule.pk}/send")  # the path without its slash
    assert response.status_code == 202
    assert response.json() == {"accepted": True}
    [queue] = callbacks
    assert (queue.func.__self__.name, queue.args) == ("subscriptions.send_schedule", (schedule.pk,))


def test_send_answers_404_for_an_unknown_schedule(writer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = writer.post(f"{URL}999/send/")
    assert response.status_code == 404
    assert callbacks == []


def test_send_needs_the_write_scope(reader):
    schedule = make_schedule()
    response = reader.post(f"{URL}{schedule.pk}/send/")
    assert response.status_code == 403


def test_the_periodic_task_of_a_schedule_runs_the_send_task(settings):
    schedule = make_schedule()
    assert schedule.periodic_task.task == tasks.send_schedule.name == settings.SCHEDULE_FIRE_TASK


@override_settings(MESSAGE_SENDER_URL=None)
def test_the_send_task_fires_its_schedule(caplog):
    schedule = make_schedule()
    with caplog.at_level(logging.INFO, logger="subscriptions"):
        tasks.send_schedule.apply(args=[schedule.pk]).get()
    assert f"Schedule {schedule.pk} (0 8 * * 1) fired." in caplog.messages


def test_the_send_task_skips_a_deleted_schedule(caplog):
    with caplog.at_level(logging.INFO, logger="subscriptions"):
        tasks.send_schedule.apply(args=[999]).get()
    assert "Schedule 999 no longer exists; nothing to send." in caplog.messages


@pytest.mark.django_db(transaction=True)
def test_the_migration_points_the_periodic_tasks_of_a_deployed_database_at_the_send_task():
    before, after = [("subscriptions", "0003_daily_send_estimate_task")], [("subscriptions", "0004_schedule_fire_task")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    PeriodicTask = old_apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.create(name="Fire schedule 1", task="contentstore.tasks.schedule_fire", args="[1]")
    PeriodicTask.objects.create(name="Something else", task="subscriptions.estimate_daily_sends")
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    tasks_by_name = dict(PeriodicTask.objects.values_list("name", "task"))
    assert tasks_by_name["Fire schedule 1"] == "subscriptions.send_schedule"
    assert tasks_by_name["Something else"] == "subscriptions.estimate_daily_sends"


def test_options_on_send_describes_the_operation(writer):
    schedule = make_schedule()
    response = writer.options(f"{URL}{schedule.pk}/send/")
    assert response.status_code == 200
    assert "POST" in response["Allow"]
