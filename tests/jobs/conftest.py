"""Jobs are sent to real local HTTP servers; time is a manual clock the dispatcher and workers read."""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from core import outbound
from harness.peer import LocalServer
from jobs import clock as job_clock
from jobs.dispatcher import dispatch_once
from tests.processes import child_environment as service_environment

from .helpers import celery_worker

START = datetime(2030, 1, 31, 18, 36, 21, tzinfo=UTC)


@pytest.fixture
def target(http_server) -> LocalServer:
    """A real HTTP server on 127.0.0.1 (handles requests concurrently), fresh for each test: every request
    it received is answered (and logged) before the log is cleared, so one a job gave up on in an earlier
    test is never logged among this test's (and none of this test's outlives it)."""
    http_server.reset()
    yield http_server
    http_server.reset()


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    """Tests reach their local servers as development would: loopback is allowed (SSRF tests undo it)."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.JOBS_SIGNING_KEY = "current-signing-key-for-tests"
    settings.JOBS_SIGNING_NEXT_KEY = None
    yield
    outbound.close_clients()


@pytest.fixture
def clock():
    """A manual clock, in use by the dispatcher and the deliveries for the test."""
    manual = job_clock.ManualClock(START)
    with job_clock.using(manual):
        yield manual


@pytest.fixture
def scopes() -> tuple[str, ...]:
    """The owner (unpacking as (user, raw key)) and the outsider may read and write jobs."""
    return ("jobs:readwrite",)


@pytest.fixture
def member_scopes() -> tuple[str, ...]:
    return ("jobs:readonly",)


@pytest.fixture
def jobs_api():
    """A client that sends nothing but what the test gives it (the key is a parameter)."""
    return APIClient()


@pytest.fixture
def run_due(django_capture_on_commit_callbacks, eager_celery) -> Callable[..., int]:
    """run_due() dispatches the jobs due on the test's clock and delivers them at once (eager)."""

    def run(limit: int | None = None) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return dispatch_once(limit=limit)

    return run


@pytest.fixture
def worker(transactional_db):
    with celery_worker():
        yield


@pytest.fixture
def child_environment(transactional_db, settings) -> dict[str, str]:
    """Environment for a process of the service (a worker, the dispatcher) that shares the test's database."""
    return service_environment(
        OUTBOUND_ALLOWED_NETWORKS=",".join(settings.OUTBOUND_ALLOWED_NETWORKS),
        JOBS_SIGNING_KEY=settings.JOBS_SIGNING_KEY,
        JOBS_DISPATCH_INTERVAL_MS="20",
    )
