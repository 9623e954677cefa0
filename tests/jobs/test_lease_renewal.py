"""A worker renews the leases of the jobs it holds, so a short lease never cuts a long delivery short.

A real worker (a thread of this process) sends to a local target that holds its
answer; the manual clock moves the lease ends past, the renewer moves them on.
"""

import threading
from datetime import timedelta

import pytest
from werkzeug import Response

from jobs.dispatcher import dispatch_once
from jobs.models import AttemptOutcome, Job, JobState
from jobs.services import deliveries

from .helpers import make_job, requests_to, state_of, wait_until


@pytest.fixture
def held_target(target):
    """A target path, `/slow`, that counts the requests arrived and answers once `release` is set."""
    arrived, release = [], threading.Event()

    def answer_when_released(request):
        arrived.append(request.headers["Job-Delivery-Id"])
        release.wait(30)
        return Response("ok")

    target.expect_request("/slow").respond_with_handler(answer_when_released)
    yield target, arrived, release
    release.set()


def lease_end(job: Job):
    return Job.objects.values_list("next_attempt_at", flat=True).get(pk=job.pk)


def test_a_delivery_longer_than_the_lease_keeps_its_job(owner, held_target, worker, clock, settings):
    settings.JOBS_LEASE_SECONDS = 3  # renewed every second
    target, arrived, release = held_target
    user, _ = owner
    job = make_job(user, target.url_for("/slow"), timeout=30)
    assert dispatch_once() == 1
    wait_until(lambda: len(arrived) == 1, what="the request to be under way")
    claimed_until = lease_end(job)

    clock.advance(seconds=2)
    wait_until(lambda: lease_end(job) == clock.now() + timedelta(seconds=3), what="the lease to be renewed")
    clock.advance(seconds=2)  # past the lease as claimed, within the lease as renewed
    assert clock.now() > claimed_until
    assert dispatch_once() == 0  # not taken for lost

    release.set()
    wait_until(lambda: state_of(job) == JobState.SUCCEEDED, what="the job to be recorded")
    wait_until(lambda: deliveries.leases() == [], what="its lease to be let go")
    assert len(requests_to(target, "/slow")) == 1
    assert list(Job.objects.get(pk=job.pk).attempts.values_list("outcome", flat=True)) == [AttemptOutcome.SUCCEEDED]


def test_renewal_stops_after_the_delivery_time_limit(owner, held_target, worker, clock, settings):
    settings.JOBS_LEASE_SECONDS = 30  # the renewer's own turns stay out of the way
    settings.JOBS_DELIVERY_TIME_LIMIT = 60
    target, arrived, release = held_target
    user, _ = owner
    job = make_job(user, target.url_for("/slow"), timeout=30)
    assert dispatch_once() == 1
    wait_until(lambda: len(arrived) == 1, what="the request to be under way")

    clock.advance(seconds=20)
    assert deliveries.renew() == 1
    assert lease_end(job) == clock.now() + timedelta(seconds=30)

    clock.advance(seconds=41)  # the chunk was taken over 60 s ago: a wedged worker lets go
    assert deliveries.leases() == []
    assert deliveries.renew() == 0
    clock.advance(seconds=10)  # past the last renewal's end
    assert dispatch_once() == 1  # claimed again, as a lost worker's job is

    release.set()
    wait_until(lambda: state_of(job) == JobState.SUCCEEDED, what="the job to be sent again and recorded")
    wait_until(lambda: deliveries.held() == 0, what="both deliveries to be done with")
    assert len(arrived) == 2  # at least once: sent again, with the same delivery id
    assert arrived[0] == arrived[1] == str(job.delivery_id)
    # The claim found attempt 1 lost; the first worker's late answer is recorded beside it, not over the job's state.
    outcomes = sorted(Job.objects.get(pk=job.pk).attempts.values_list("outcome", flat=True))
    assert outcomes == [AttemptOutcome.LOST, AttemptOutcome.SUCCEEDED, AttemptOutcome.SUCCEEDED]
