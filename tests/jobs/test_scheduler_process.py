"""The scheduler process of the Procfile (`manage.py runscheduler`): celery beat and the jobs dispatcher."""

import signal
import subprocess
import sys
import threading
from pathlib import Path

from django.utils import timezone

from jobs.models import JobState

from .helpers import make_job, requests_to, state_of, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_the_scheduler_process_runs_beat_and_dispatches_due_jobs(owner, target, child_environment, worker):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    scheduler = subprocess.Popen(
        [sys.executable, "manage.py", "runscheduler", "--loglevel=DEBUG"],
        cwd=ROOT,
        env=child_environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(scheduler.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("Jobs dispatcher started." in line for line in output), what="the scheduler to start")
        job = make_job(user, target.url_for("/hook"), at=timezone.now())
        wait_until(lambda: state_of(job) == JobState.SUCCEEDED, what="the job to be dispatched and sent")
    finally:
        scheduler.send_signal(signal.SIGTERM)
        try:
            scheduler.wait(timeout=30)
        finally:
            scheduler.kill()  # never outlive the test, whatever happened
        reader.join(timeout=5)
    assert scheduler.returncode == 0
    assert len(requests_to(target, "/hook")) == 1
    log = "".join(output)
    assert "beat: Starting..." in log
    assert "DatabaseScheduler: Fetching database schedule" in log  # the schedules live in the database
    assert "Jobs dispatcher stopped." in log
