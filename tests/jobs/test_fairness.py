"""One slow or hanging peer holds only its own share of a process's outbound capacity."""

import threading

import pytest
from werkzeug import Response

from core import outbound
from harness.peer import local_server
from jobs import services
from jobs.dispatcher import dispatch_once
from jobs.models import Job, JobState

from .helpers import celery_worker, make_job, requests_to, state_of, wait_until


class Hanging:
    """`/hang` on the target answers only once the test lets it go (or after 10 s)."""

    def __init__(self, target):
        self.let_go = threading.Event()
        self.arrived: list[str] = []  # the server logs a request only once it is answered
        target.expect_request("/hang").respond_with_handler(self.answer)

    def answer(self, request):
        self.arrived.append(request.path)
        self.let_go.wait(10)
        return Response("late")

    def set(self) -> None:
        self.let_go.set()


@pytest.fixture
def hanging(target):
    hang = Hanging(target)
    yield hang
    hang.set()


def test_a_hanging_origin_holds_its_own_slots_and_no_others(target, hanging, settings):
    settings.OUTBOUND_CONCURRENCY_PER_ORIGIN = 2
    target.expect_request("/fast").respond_with_data("fast")
    hang_url = target.url_for("/hang")  # origin http://127.0.0.1:<port>
    held = [outbound.submit(outbound.request("GET", hang_url, timeout=10)) for _ in range(2)]
    wait_until(lambda: len(hanging.arrived) == 2, what="both slots of the hanging origin to be taken")

    # Another origin (the same server by another name) is served at once.
    fast = outbound.send("GET", target.url_for("/fast").replace("127.0.0.1", "localhost"), timeout=5)
    assert fast.body == b"fast"
    # The hanging origin's third request waits for a slot, and is told so when it may not wait long.
    with pytest.raises(outbound.OriginBusy, match="OUTBOUND_CONCURRENCY_PER_ORIGIN"):
        outbound.run(outbound.request("GET", hang_url, queue_timeout=0.2))
    assert len(hanging.arrived) == 2

    hanging.set()
    assert [future.result(timeout=10).body for future in held] == [b"late", b"late"]
    assert outbound.send("GET", hang_url).body == b"late"  # its slots are free again


def test_a_job_whose_origin_stays_busy_is_given_back_unsent_without_its_attempt_counted(owner, target, clock, settings):
    settings.OUTBOUND_CONCURRENCY_PER_ORIGIN = 1
    settings.JOBS_ORIGIN_QUEUE_SECONDS = 1
    user, _ = owner

    def answer_after_the_queue_wait(request):
        threading.Event().wait(2)  # longer than the other job may wait for the origin's one slot
        return Response("ok")

    target.expect_request("/slow").respond_with_handler(answer_after_the_queue_wait)
    jobs = [make_job(user, target.url_for("/slow"), timeout=10) for _ in range(2)]
    [(lease, ids)] = services.jobs_claim_due(now=clock.now(), limit=10)
    assert len(ids) == 2

    assert services.jobs_deliver(job_ids=[str(job_id) for job_id in ids], lease=str(lease)) == 1

    sent, deferred = sorted((Job.objects.get(pk=job.pk) for job in jobs), key=lambda job: job.state != "succeeded")
    assert (sent.state, sent.attempt_count, sent.attempts.count()) == (JobState.SUCCEEDED, 1, 1)
    assert (deferred.state, deferred.attempt_count, deferred.attempts.count()) == (JobState.SCHEDULED, 0, 0)
    assert (deferred.lease, deferred.first_attempt_at) == (None, None)
    assert (deferred.next_attempt_at - clock.now()).total_seconds() == settings.JOBS_ORIGIN_BUSY_DELAY
    assert len(requests_to(target, "/slow")) == 1


def test_a_hanging_target_does_not_hold_a_workers_tasks(transactional_db, owner, target, hanging, clock):
    user, _ = owner
    target.expect_request("/fast").respond_with_data("ok")
    stuck = make_job(user, target.url_for("/hang"), timeout=10)
    with celery_worker():  # one worker, one task at a time (solo pool)
        assert dispatch_once() == 1
        wait_until(lambda: len(hanging.arrived) == 1, what="the hanging job to be sent")
        quick = make_job(user, target.url_for("/fast"))
        assert dispatch_once() == 1
        wait_until(lambda: state_of(quick) == JobState.SUCCEEDED, what="the other job to be sent and recorded")
        assert state_of(stuck) == JobState.RUNNING  # still waiting for its answer
        hanging.set()
        wait_until(lambda: state_of(stuck) == JobState.SUCCEEDED, what="the hanging job to be recorded")


def test_one_owner_holds_at_most_its_share_whatever_its_origins(target, hanging, settings):
    settings.OUTBOUND_CONCURRENCY_PER_OWNER = 2
    target.expect_request("/fast").respond_with_data("fast")
    by_address, by_name = target.url_for("/hang"), target.url_for("/hang").replace("127.0.0.1", "localhost")
    held = [outbound.submit(outbound.request("GET", url, timeout=10, owner="mallory")) for url in (by_address, by_name)]
    wait_until(lambda: len(hanging.arrived) == 2, what="the owner's two requests to be in flight")

    with local_server() as other:  # a third origin
        other.expect_request("/fast").respond_with_data("fast")
        elsewhere = other.url_for("/fast")
        with pytest.raises(outbound.OriginBusy, match="its owner had 2 requests in flight"):
            outbound.run(outbound.request("GET", elsewhere, owner="mallory", queue_timeout=0.2))
        assert outbound.run(outbound.request("GET", elsewhere, owner="alice")).body == b"fast"

    hanging.set()
    assert [future.result(timeout=10).body for future in held] == [b"late", b"late"]


def test_user_given_urls_cannot_take_the_slots_of_the_operators_peers(target, hanging, settings):
    settings.OUTBOUND_MAX_IN_FLIGHT = 2
    target.expect_request("/sender").respond_with_data("sent")
    by_address, by_name = target.url_for("/hang"), target.url_for("/hang").replace("127.0.0.1", "localhost")
    held = [outbound.submit(outbound.request("GET", url, timeout=10)) for url in (by_address, by_name)]
    wait_until(lambda: len(hanging.arrived) == 2, what="two guarded requests to be in flight")

    with pytest.raises(outbound.OriginBusy, match="this process had 2 requests in flight"):
        outbound.run(outbound.request("GET", target.url_for("/sender"), queue_timeout=0.2))
    assert outbound.send("GET", target.url_for("/sender"), trusted=True).body == b"sent"

    hanging.set()
    assert [future.result(timeout=10).body for future in held] == [b"late", b"late"]
