"""A worker's recorder keeps its database connection between batches: no health check before each
one, and a connection that broke meanwhile is replaced at once, not after a pause.

A real worker (a thread of this process) sends to a local target; the recorder thread records.
"""

import threading

import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper

from jobs.dispatcher import dispatch_once
from jobs.models import JobState
from jobs.services import deliveries, in_flight

from .helpers import make_job, state_of, wait_until

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the health check of PostgreSQL")


@pytest.fixture
def recorder_checks(monkeypatch) -> list[str]:
    """The health checks (`is_usable`) made by the recorder thread from now on, one entry each."""
    checks = []
    is_usable = DatabaseWrapper.is_usable

    def counted(self):
        if threading.current_thread().name == "job-recorder":
            checks.append(threading.current_thread().name)
        return is_usable(self)

    monkeypatch.setattr(DatabaseWrapper, "is_usable", counted)
    return checks


@pytest.fixture
def busy_recorder(monkeypatch):
    """The recorder's connection counts as in steady use however long a test takes between jobs."""
    monkeypatch.setattr(deliveries._connection, "idle_seconds", 3600)


def deliver(user, target) -> None:
    job = make_job(user, target.url_for("/hook"))
    assert dispatch_once() == 1
    wait_until(lambda: state_of(job) == JobState.SUCCEEDED, what="the job to be recorded")


def test_the_recorder_checks_its_connection_once_not_before_every_batch(
    owner, target, worker, busy_recorder, recorder_checks
):
    target.expect_request("/hook").respond_with_data("ok")
    user, _ = owner
    for _ in range(4):
        deliver(user, target)
    assert len(recorder_checks) <= 1  # at most the first batch's, on a connection not yet checked


def test_a_recorder_connection_that_broke_between_batches_is_replaced_at_once(
    owner, target, worker, busy_recorder, monkeypatch
):
    target.expect_request("/hook").respond_with_data("ok")
    monkeypatch.setattr(in_flight, "UNREACHABLE_PAUSE", 3600)  # a pause would outlast the test's wait
    user, _ = owner
    deliver(user, target)
    with connection.cursor() as cursor:  # every other session of the test's database, the recorder's among them
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    deliver(user, target)
