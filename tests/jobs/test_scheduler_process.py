"""The scheduler process of the Procfile (`manage.py runscheduler`): celery beat and the jobs dispatcher."""

import sys

from django.utils import timezone

from harness.processes import Process
from jobs.models import JobState

from .helpers import make_job, requests_to, state_of, wait_until


def test_the_scheduler_process_runs_beat_and_dispatches_due_jobs(owner, target, child_environment, worker, tmp_path):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    command = [sys.executable, "manage.py", "runscheduler", "--loglevel=DEBUG"]
    scheduler = Process("scheduler", command, env=child_environment, log=tmp_path / "scheduler.log").start()
    try:
        wait_until(lambda: "Scheduler loops started:" in scheduler.output(), what="the scheduler to start")
        job = make_job(user, target.url_for("/hook"), at=timezone.now())
        wait_until(lambda: state_of(job) == JobState.SUCCEEDED, what="the job to be dispatched and sent")
    finally:
        scheduler.stop(grace=30)  # never outlives the test, whatever happened
    assert scheduler.returncode == 0
    assert len(requests_to(target, "/hook")) == 1
    log = scheduler.output()
    assert "beat: Starting..." in log
    assert "DatabaseScheduler: Fetching database schedule" in log  # the schedules live in the database
    assert "Scheduler loops stopped:" in log
