import time
from collections.abc import Callable

import pytest

from jobs import services
from jobs.models import Job
from tests.worker import running_worker


def make_job(user, uri: str, **fields) -> Job:
    return services.job_create(user=user, uri=uri, **fields)


def wait_until(condition: Callable[[], bool], *, what: str, limit: float = 30.0) -> None:
    """Wait for `condition` (a state the test then checks); fail naming `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Gave up waiting for {what}.")
        time.sleep(0.02)


def state_of(job: Job) -> str:
    return Job.objects.get(pk=job.pk).state


def requests_to(server, path: str) -> list:
    """The requests `server` received on `path`, in order."""
    return [request for request, _ in list(server.log) if request.path == path]


celery_worker = running_worker  # a real worker for the length of a `with`
