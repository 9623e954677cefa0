"""The database decides: dispatchers claim due jobs without overlap, workers send only what they hold.

These tests use real Celery workers (a thread of this process, or a process of
its own that is killed) and several dispatchers at once.
"""

import json
import logging
import sys
import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable
from werkzeug import Response

from core import outbound
from harness.processes import Process
from jobs import services, signing
from jobs.dispatcher import dispatch_once, pause, run_dispatcher, start_dispatcher_thread
from jobs.models import SENT_FIELDS, Attempt, AttemptOutcome, Job, JobState
from jobs.services import delivery, dispatch
from jobs.services.delivery import RequestResult, record_results, send_all
from tests.worker import unreachable_broker

from .helpers import celery_worker, make_job, requests_to, state_of, wait_until


def test_a_due_job_is_sent_by_a_worker_and_not_before_it_is_due(owner, target, worker, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"), at=clock.now() + timedelta(minutes=5))
    assert dispatch_once() == 0
    clock.advance(minutes=5)
    assert dispatch_once() == 1
    wait_until(lambda: state_of(job) == JobState.SUCCEEDED, what="the job to be sent")
    assert len(requests_to(target, "/hook")) == 1


def test_two_dispatchers_never_claim_the_same_job(owner, transactional_db, clock):
    user, _ = owner
    jobs = {make_job(user, f"https://example.org/{n}").pk for n in range(10)}
    held, release, first = threading.Event(), threading.Event(), {}

    def hold_a_claim_open():
        try:
            with transaction.atomic():
                [(first["lease"], first["ids"])] = services.jobs_claim_due(now=clock.now(), limit=4)
                held.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_a_claim_open)
    holder.start()
    held.wait(30)
    second = [job_id for claim in services.jobs_claim_due(now=clock.now(), limit=100) for job_id in claim.ids]
    release.set()
    holder.join()

    assert len(first["ids"]) == 4
    assert set(first["ids"]).isdisjoint(second)
    assert set(first["ids"]) | set(second) == jobs
    assert services.jobs_claim_due(now=clock.now(), limit=100) == []


def test_a_claim_is_cut_into_chunks_each_under_a_lease_of_its_own(owner, clock, settings):
    settings.JOBS_DELIVERY_CHUNK = 3
    user, _ = owner
    jobs = [make_job(user, f"https://example.org/{n}", at=clock.now() - timedelta(seconds=10 - n)) for n in range(7)]

    claims = services.jobs_claim_due(now=clock.now(), limit=10)

    ids = [job.pk for job in jobs]
    assert [claim.ids for claim in claims] == [ids[:3], ids[3:6], ids[6:]]
    assert len({claim.lease for claim in claims}) == 3
    for claim in claims:
        assert set(Job.objects.filter(lease=claim.lease).values_list("pk", flat=True)) == set(claim.ids)


def test_a_task_sends_only_the_jobs_it_names_of_its_lease(owner, target, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    jobs = [make_job(user, target.url_for("/hook")) for _ in range(3)]
    [(lease, ids)] = services.jobs_claim_due(now=clock.now(), limit=10)

    assert services.jobs_deliver(job_ids=[str(ids[0])], lease=str(lease)) == 1

    assert len(requests_to(target, "/hook")) == 1
    states = {job.pk: state_of(job) for job in jobs}
    assert sorted(states.values()) == [JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED]
    assert states[ids[0]] == JobState.SUCCEEDED


def test_several_dispatchers_and_a_worker_send_each_job_exactly_once(owner, target, worker, clock, settings):
    settings.JOBS_DISPATCH_BATCH = 7  # many small claims, so the dispatchers contend
    settings.JOBS_DELIVERY_CHUNK = 5
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    jobs = [make_job(user, target.url_for("/hook"), at=clock.now() + timedelta(seconds=1)) for _ in range(120)]
    dispatchers = [start_dispatcher_thread(clock=clock) for _ in range(3)]
    clock.advance(seconds=1)
    try:
        wait_until(
            lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() == len(jobs),
            what="every job to be sent",
            limit=60,
        )
    finally:
        for thread, stop in dispatchers:
            stop.set()
            thread.join()
    deliveries = Counter(request.headers["Job-Delivery-Id"] for request in requests_to(target, "/hook"))
    assert sorted(deliveries) == sorted(str(job.delivery_id) for job in Job.objects.all())
    assert set(deliveries.values()) == {1}
    assert all(job.attempts.count() == 1 for job in Job.objects.all())


def test_a_job_updated_after_it_was_claimed_is_sent_only_in_its_new_form(transactional_db, owner, target, clock):
    user, _ = owner
    target.expect_request("/old").respond_with_data("ok")
    target.expect_request("/new").respond_with_data("ok")
    job = make_job(user, target.url_for("/old"))
    assert dispatch_once() == 1  # claimed and queued; no worker has taken it yet
    services.job_update(job=job, uri=target.url_for("/new"), at=clock.now())
    with celery_worker():
        wait_until(lambda: dispatch_once() == 1, what="the changed job to be claimed again")
        wait_until(lambda: state_of(job) == JobState.SUCCEEDED, what="the changed job to be sent")
    assert requests_to(target, "/old") == []
    assert len(requests_to(target, "/new")) == 1


def test_a_job_deleted_after_it_was_claimed_is_not_sent(transactional_db, owner, target, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"))
    other = make_job(user, target.url_for("/other"))
    assert dispatch_once() == 2
    services.job_delete(job=job)
    with celery_worker():
        wait_until(lambda: other.attempts.exists() and state_of(other) != JobState.RUNNING, what="the other job")
    assert requests_to(target, "/hook") == []


def test_what_came_of_each_request_is_recorded_as_its_job_stands_when_recorded(owner, target, clock, caplog):
    """Each job sent is recorded together with the others, by the state it holds when recorded: one claimed
    again meanwhile keeps its new claim (its attempt is recorded all the same), one deleted leaves nothing."""
    user, _ = owner
    target.expect_request("/ok").respond_with_data("ok")
    target.expect_request("/broken").respond_with_data("no", status=500)
    succeeded, retried, reclaimed, deleted = (
        make_job(user, target.url_for(path)) for path in ("/ok", "/broken", "/ok", "/ok")
    )
    [(lease, ids)] = services.jobs_claim_due(now=clock.now(), limit=10)
    jobs = services.jobs_claimed(job_ids=[str(job_id) for job_id in ids], lease=str(lease))
    results = outbound.run(send_all(jobs))
    new_lease = uuid.uuid4()  # while the requests were made: one job claimed anew, one deleted
    Job.objects.filter(pk=reclaimed.pk).update(lease=new_lease)
    services.job_delete(job=deleted)

    with caplog.at_level(logging.ERROR):
        assert record_results(results) == []
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []  # at once

    def stands(job):
        return Job.objects.values_list("state", "lease", "attempt_count").get(pk=job.pk)

    assert stands(succeeded) == (JobState.SUCCEEDED, None, 1)
    assert stands(retried) == (JobState.SCHEDULED, None, 1)
    assert Job.objects.get(pk=retried.pk).next_attempt_at > clock.now()
    assert stands(reclaimed) == (JobState.RUNNING, new_lease, 1)
    assert not Job.objects.filter(pk=deleted.pk).exists()
    outcomes = dict(Attempt.objects.values_list("job_id", "outcome"))
    assert outcomes == {
        succeeded.pk: AttemptOutcome.SUCCEEDED,
        retried.pk: AttemptOutcome.FAILED,
        reclaimed.pk: AttemptOutcome.SUCCEEDED,
    }


@pytest.mark.parametrize(
    "change",
    [delivery._change_states_in_one_statement, delivery._change_states_with_queries],
    ids=["one statement", "queries"],
)
def test_a_record_gives_each_job_that_holds_its_lease_its_new_state_on_postgresql_as_elsewhere(
    change, owner, target, clock, monkeypatch
):
    """Succeeded, tried again later, failed for good, deferred (its origin busy), claimed again meanwhile, deleted:
    each as the decision for it says, with its callbacks, whichever way the states are written."""
    monkeypatch.setattr(delivery, "_change_states", change)
    user, _ = owner
    target.expect_request("/ok").respond_with_data("ok")
    target.expect_request("/broken").respond_with_data("no", status=500)
    url = target.url_for
    succeeded = make_job(user, url("/ok"), callback_uri=url("/callback"))
    retried = make_job(user, url("/broken"), failure_callback_uri=url("/failed"))
    dead = make_job(user, url("/broken"), failure_callback_uri=url("/failed"))
    deferred, reclaimed, deleted = (make_job(user, url("/ok")) for _ in range(3))
    Job.objects.filter(pk=dead.pk).update(attempt_count=len(dead.retry_delays))  # its next attempt is its last
    [(lease, ids)] = services.jobs_claim_due(now=clock.now(), limit=10)
    jobs = services.jobs_claimed(job_ids=[str(job_id) for job_id in ids], lease=str(lease))
    results = outbound.run(send_all(jobs))
    busy = RequestResult(error="busy", attempted=False, deferred=True, started=clock.now(), finished=clock.now())
    results = [(job, busy if job.pk == deferred.pk else result) for job, result in results]
    new_lease = uuid.uuid4()
    Job.objects.filter(pk=reclaimed.pk).update(lease=new_lease)
    services.job_delete(job=deleted)

    assert record_results(results) == []

    def stands(job):
        return Job.objects.values_list("state", "lease", "attempt_started_at", "finished_at").get(pk=job.pk)

    assert stands(succeeded) == (JobState.SUCCEEDED, None, None, clock.now())
    assert stands(retried) == (JobState.SCHEDULED, None, None, None)
    assert Job.objects.get(pk=retried.pk).next_attempt_at == clock.now() + timedelta(seconds=retried.retry_delays[0])
    assert stands(dead) == (JobState.FAILED, None, None, clock.now())
    assert Job.objects.values_list("state", "lease", "attempt_count").get(pk=deferred.pk) == (
        JobState.SCHEDULED,
        None,
        0,
    )
    assert stands(reclaimed)[:2] == (JobState.RUNNING, new_lease)
    assert not Job.objects.filter(pk=deleted.pk).exists()
    assert set(Job.objects.filter(parent__isnull=False).values_list("parent_id", "uri")) == {
        (succeeded.pk, url("/callback")),
        (dead.pk, url("/failed")),
    }
    assert set(Attempt.objects.values_list("job_id", flat=True)) == {succeeded.pk, retried.pk, dead.pk, reclaimed.pk}


def test_a_record_tried_again_after_its_commit_was_made_stores_each_attempt_once(owner, target, clock, caplog):
    """The database could not be reached while the record's commit was answered: the commit may have been made,
    and the record is tried again with the same results."""
    user, _ = owner
    target.expect_request("/ok").respond_with_data("ok")
    target.expect_request("/broken").respond_with_data("no", status=500)
    jobs = [make_job(user, target.url_for(path)) for path in ("/ok", "/broken")]
    [(lease, ids)] = services.jobs_claim_due(now=clock.now(), limit=10)
    results = outbound.run(send_all(services.jobs_claimed(job_ids=[str(job_id) for job_id in ids], lease=str(lease))))
    record_results(results)
    recorded = {job.pk: Job.objects.values_list("state", "next_attempt_at").get(pk=job.pk) for job in jobs}

    with caplog.at_level(logging.ERROR):
        record_results(results, again=True)

    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert sorted(Attempt.objects.values_list("job_id", flat=True)) == sorted(job.pk for job in jobs)
    assert {job.pk: Job.objects.values_list("state", "next_attempt_at").get(pk=job.pk) for job in jobs} == recorded


def test_a_job_changed_before_it_is_due_is_sent_in_its_new_form(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/new", method="POST").respond_with_data("ok")
    job = make_job(user, target.url_for("/old"), at=clock.now() + timedelta(hours=1))
    services.job_update(job=job, uri=target.url_for("/new"), method="POST", body="v2")
    clock.advance(hours=1)
    run_due()
    [request] = requests_to(target, "/new")
    assert request.get_data() == b"v2"
    assert requests_to(target, "/old") == []


def test_a_cancelled_job_is_not_sent(owner, target, run_due, clock):
    user, _ = owner
    job = make_job(user, target.url_for("/hook"))
    services.job_cancel(job=job)
    assert run_due() == 0
    assert state_of(job) == JobState.CANCELLED


def test_a_stale_task_for_an_old_claim_sends_nothing(owner, target, run_due, clock):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"))
    [(old_lease, _)] = services.jobs_claim_due(now=clock.now(), limit=10)
    clock.advance(seconds=700)  # the lease expired: the job is claimed anew
    [(new_lease, ids)] = services.jobs_claim_due(now=clock.now(), limit=10)
    assert ids == [job.pk]
    assert services.jobs_deliver(job_ids=[str(job.pk)], lease=str(old_lease)) == 0
    assert requests_to(target, "/hook") == []
    assert services.jobs_deliver(job_ids=[str(job.pk)], lease=str(new_lease)) == 1


def test_a_job_whose_worker_was_killed_is_sent_again_when_its_lease_expires(
    owner, target, clock, child_environment, settings
):
    user, _ = owner
    arrived, release = threading.Event(), threading.Event()

    def hang(request):
        arrived.set()
        release.wait(30)
        return Response("too late")

    target.expect_oneshot_request("/hook").respond_with_handler(hang)
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"))
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=WARNING"]
    command += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    doomed = Process("worker", command, env=child_environment).start()
    try:
        assert dispatch_once() == 1
        assert arrived.wait(60), "the worker never sent the job"
    finally:
        doomed.kill()  # mid-request
        release.set()

    job.refresh_from_db()
    assert (job.state, job.attempt_count) == (JobState.RUNNING, 1)
    assert job.attempt_started_at is not None
    assert not job.attempts.exists()
    lease_end = clock.now() + timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    clock.set(lease_end - timedelta(microseconds=1))
    assert dispatch_once() == 0  # the lease still holds
    clock.set(lease_end)
    with celery_worker():
        assert dispatch_once() == 1
        wait_until(lambda: state_of(job) == JobState.SUCCEEDED, what="the job to be sent again")

    job.refresh_from_db()
    assert [attempt.outcome for attempt in job.attempts.all()] == [AttemptOutcome.LOST, AttemptOutcome.SUCCEEDED]
    first, second = requests_to(target, "/hook")
    assert first.headers["Job-Delivery-Id"] == second.headers["Job-Delivery-Id"] == str(job.delivery_id)
    assert (first.headers["Job-Attempt"], second.headers["Job-Attempt"]) == ("1", "2")


def test_the_dispatch_command_claims_due_jobs_until_it_is_stopped(owner, child_environment, tmp_path):
    user, _ = owner
    job = make_job(user, "https://example.org/hook", at=timezone.now())
    dispatcher = [sys.executable, "manage.py", "dispatchjobs"]
    command = Process("dispatcher", dispatcher, env=child_environment, log=tmp_path / "dispatcher.log").start()
    try:
        wait_until(lambda: state_of(job) == JobState.RUNNING, what="the command to claim the job")
    finally:
        command.stop(grace=30)
    assert command.returncode == 0
    output = command.output()
    assert "Dispatching due jobs" in output


def test_a_job_whose_every_attempt_was_lost_fails_without_another_send(owner, target, clock, settings):
    settings.JOBS_RETRY_SCHEDULE = []  # one attempt in all
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    target.expect_request("/failed").respond_with_data("noted")
    job = make_job(user, target.url_for("/hook"), failure_callback_uri=target.url_for("/failed"))
    services.jobs_claim_due(now=clock.now(), limit=10)  # its worker is lost
    clock.advance(seconds=settings.JOBS_LEASE_SECONDS)
    [(lease, _)] = services.jobs_claim_due(now=clock.now(), limit=10)
    assert services.jobs_deliver(job_ids=[str(job.pk)], lease=str(lease)) == 0
    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert [attempt.outcome for attempt in job.attempts.all()] == [AttemptOutcome.LOST]
    assert requests_to(target, "/hook") == []
    failure_callback = Job.objects.get(parent=job)
    assert json.loads(failure_callback.body)["attempts"] == 1


def test_no_more_than_the_in_flight_limit_is_claimed_until_workers_catch_up(owner, target, clock, settings):
    settings.JOBS_MAX_IN_FLIGHT = 3
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    for _ in range(5):
        make_job(user, target.url_for("/hook"))
    assert dispatch_once() == 3
    assert dispatch_once() == 0  # the rest wait, due, in the database
    for job in Job.objects.filter(state=JobState.RUNNING):
        services.jobs_deliver(job_ids=[str(job.pk)], lease=str(job.lease))
    assert dispatch_once() == 2


def test_jobs_claimed_while_the_task_queue_is_unreachable_are_given_back_and_sent_once_it_is_back(
    owner, target, transactional_db, clock
):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook"))
    with unreachable_broker(), pytest.raises(BrokerUnreachable):
        dispatch_once()

    job.refresh_from_db()
    assert (job.state, job.attempt_count, job.lease, job.attempt_started_at) == (JobState.SCHEDULED, 0, None, None)
    assert job.first_attempt_at is None
    assert job.next_attempt_at <= clock.now()  # due again at once, not when a lease would have ended
    with celery_worker():
        assert dispatch_once() == 1
        wait_until(lambda: state_of(job) == JobState.SUCCEEDED, what="the job to be sent")
    assert [attempt.outcome for attempt in job.attempts.all()] == [AttemptOutcome.SUCCEEDED]
    assert len(requests_to(target, "/hook")) == 1


def test_the_dispatcher_keeps_going_while_the_task_queue_is_unreachable(owner, transactional_db, clock):
    user, _ = owner
    job = make_job(user, "https://example.org/hook")
    stop = threading.Event()
    stopper = threading.Timer(2.0, stop.set)
    stopper.start()
    try:
        with unreachable_broker():
            run_dispatcher(stop)  # returns only once stopped
    finally:
        stopper.cancel()
    job.refresh_from_db()
    assert (job.state, job.attempt_count) == (JobState.SCHEDULED, 0)


def test_an_idle_dispatcher_wakes_when_the_next_job_is_due_and_never_later_than_its_interval(owner, clock, settings):
    settings.JOBS_DISPATCH_INTERVAL_MS = 100
    user, _ = owner
    assert pause() == 0.1  # nothing scheduled
    soon = make_job(user, "https://example.org/hook", at=clock.now() + timedelta(milliseconds=30))
    assert pause() == pytest.approx(0.03)
    clock.advance(seconds=1)  # due, and left unclaimed (the in-flight limit): no spinning
    assert pause() == 0.1
    soon.delete()
    make_job(user, "https://example.org/later", at=clock.now() + timedelta(minutes=5))
    assert pause() == 0.1


@pytest.mark.parametrize("claim", [dispatch._claim_in_one_statement, dispatch._claim_with_queries])
def test_a_claim_that_reads_its_jobs_reads_their_keyrings_valid_secrets_so_they_are_signed_without_a_query(
    claim, owner, clock
):
    user, _ = owner
    signing.current_secret(user_id=user.pk)
    signing.signing_secret_rotate(user=user, overlap=60)  # the first secret signs 60 s more, beside the new one
    url = "https://example.org/hook"
    own = make_job(user, url, at=clock.now() - timedelta(seconds=2))
    ringed = make_job(user, url, at=clock.now() - timedelta(seconds=1))
    Job.objects.filter(pk=ringed.pk).update(keyring="topic-webhook-7")  # a keyring with no secret yet

    def claimed() -> dict:
        with transaction.atomic():
            rows = claim(now=clock.now(), limit=5, leases=[uuid.uuid4()], chunk=5, read=True)
        return {row.id: row.job for row in rows}

    jobs = claimed()
    valid = signing.signing_secrets_of(user=user)  # current first
    assert len(valid) == 2
    assert jobs[own.pk].valid_secrets == [[secret.encrypted, secret.fingerprint] for secret in valid]
    assert jobs[ringed.pk].valid_secrets == []
    signing.signing_keys_attach_read(list(jobs.values()))  # makes the keyring's first secret
    read_apart = list(Job.objects.filter(pk__in=[own.pk, ringed.pk]))
    signing.signing_keys_attach(read_apart)
    assert {job.pk: job.signing_keys for job in read_apart} == {pk: job.signing_keys for pk, job in jobs.items()}
    assert all(len(job.signing_keys) == count for job, count in ((jobs[own.pk], 2), (jobs[ringed.pk], 1)))

    clock.advance(seconds=61)  # the overlap is over
    Job.objects.filter(pk=own.pk).update(state=JobState.SCHEDULED, next_attempt_at=clock.now())
    assert claimed()[own.pk].valid_secrets == [[valid[0].encrypted, valid[0].fingerprint]]


@pytest.mark.parametrize("read", [False, True], ids=["ids", "read"])
@pytest.mark.parametrize("claim", [dispatch._claim_in_one_statement, dispatch._claim_with_queries])
def test_a_claim_takes_the_oldest_due_jobs_and_marks_them_running_under_its_lease(claim, read, owner, clock, settings):
    user, _ = owner
    url = "https://example.org/hook"
    older = make_job(user, url, at=clock.now() - timedelta(seconds=2))
    newer = make_job(user, url, at=clock.now() - timedelta(seconds=1), headers={"X-Trace": "7"})
    make_job(user, url, at=clock.now() + timedelta(minutes=1))  # not due
    retried = make_job(user, url, at=clock.now() - timedelta(seconds=3))
    Job.objects.filter(pk=retried.pk).update(attempt_count=1, first_attempt_at=clock.now() - timedelta(hours=1))
    leases = [uuid.uuid4(), uuid.uuid4()]

    with transaction.atomic():
        rows = claim(now=clock.now(), limit=3, leases=leases, chunk=2, read=read)

    # Oldest first, as they were, in chunks of two, each under its own lease.
    claimed = [(retried.pk, 1, None, leases[0]), (older.pk, 0, None, leases[0]), (newer.pk, 0, None, leases[1])]
    assert [row[:4] for row in rows] == claimed
    for row, (job, lease) in zip(rows, ((retried, leases[0]), (older, leases[0]), (newer, leases[1])), strict=True):
        job.refresh_from_db()
        if read:  # the job as it is sent, as claimed: what a second read would give
            sent = Job.objects.only(*SENT_FIELDS).get(pk=job.pk)
            fields = [Job._meta.get_field(name).attname for name in SENT_FIELDS]
            assert [getattr(row.job, field) for field in fields] == [getattr(sent, field) for field in fields]
            assert row.job.headers == job.headers and isinstance(row.job.headers, dict)
        else:
            assert row.job is None
        assert (job.state, job.lease, job.attempt_started_at) == (JobState.RUNNING, lease, clock.now())
        assert job.next_attempt_at == clock.now() + timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    assert (older.attempt_count, older.first_attempt_at) == (1, clock.now())
    assert (retried.attempt_count, retried.first_attempt_at) == (2, clock.now() - timedelta(hours=1))
    assert Job.objects.filter(state=JobState.SCHEDULED).count() == 1  # the one not due
