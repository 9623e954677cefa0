"""Scenario 1: the worker is killed (SIGKILL, with its pool's children) in the middle of work.

- **A schedule fire**: many subscriptions on one schedule, a message sender that
  takes 0.1 s per message, the kill once a third of them have reached it. A new
  worker is started, the queue drains, the schedule is fired again (which resumes
  the unfinished send). Each subscription must then have been advanced exactly
  once and its `Idempotency-Key` (`<subscription id>:1`) must have reached the
  sender; the same key reaching it more than once is a duplicate the key lets the
  sender drop (counted).
- **A job batch**: jobs all due at once, a target that takes 1 s per request, the
  kill once a third have reached it. A new worker is started; jobs the dead worker
  held are claimed again when their lease ends. Every job must have run
  (succeeded, its `Job-Delivery-Id` received); jobs are at-least-once, so
  duplicates are counted, not refused.
"""

from __future__ import annotations

import time

from harness.waiting import wait_until

from .helpers import create_jobs, fire, jobs_of, make_schedule, send_failures, send_finished, subscriptions_of

COMMAND = ".venv/bin/pytest faults/test_worker_killed.py"
SUBSCRIPTIONS = 1000
JOBS = 200


def wait_for_quiet(count, redis, *, limit: float) -> None:
    """Until the task queue is empty and `count()` has not moved for 2 s."""

    def quiet() -> bool:
        before = count()
        time.sleep(2)
        return redis.llen("celery") == 0 and count() == before

    wait_until(quiet, what="the queue to drain", timeout=limit, every=0)


def test_worker_killed_during_a_schedule_fire(service, postgres, redis, sender, report):
    scenario = report.scenario("1a. Worker killed (SIGKILL) during a schedule fire", COMMAND)
    sender.behave("/outbound/", delay=0.1, status=201)
    schedule_id = make_schedule(service, name="killed-fire", count=SUBSCRIPTIONS, prefix="kill-")
    subscription_ids = set(subscriptions_of(postgres, schedule_id))

    with service.client() as client:
        fire(client, schedule_id)
        wait_until(
            lambda: sender.count("/outbound/") >= SUBSCRIPTIONS // 3, what="a third of the messages", timeout=120
        )
        service.worker.kill()
        delivered_at_kill = sender.count("/outbound/")
        advanced_at_kill = sum(1 for number in subscriptions_of(postgres, schedule_id).values() if number > 1)
        service.start_worker()
        wait_for_quiet(lambda: sender.count("/outbound/"), redis, limit=120)
        advanced_before_refire = sum(1 for number in subscriptions_of(postgres, schedule_id).values() if number > 1)
        finished_before_refire = send_finished(postgres, schedule_id)
        fire(client, schedule_id)
        wait_until(lambda: send_finished(postgres, schedule_id), what="the resumed send to finish", timeout=120)

    keys = sender.keys("/outbound/")
    expected = {f"{subscription_id}:1" for subscription_id in subscription_ids}
    positions = subscriptions_of(postgres, schedule_id)
    advanced = {subscription_id for subscription_id, number in positions.items() if number == 2}
    lost = expected - set(keys)
    unexpected = set(keys) - expected
    duplicates = sum(count - 1 for count in keys.values())
    advanced_without_delivery = [i for i in advanced if f"{i}:1" not in keys]
    beyond_one = [i for i, number in positions.items() if number > 2]
    failures = send_failures(postgres, schedule_id)

    scenario.add("subscriptions on the schedule", SUBSCRIPTIONS)
    scenario.add("delivered when the worker was killed", delivered_at_kill)
    scenario.add("advanced when the worker was killed", advanced_at_kill)
    scenario.add("advanced once the queue drained, before the second fire", advanced_before_refire)
    scenario.add("send finished before the second fire", "yes" if finished_before_refire else "no")
    scenario.add("requests to the message sender", sum(keys.values()))
    scenario.add("distinct Idempotency-Keys received", len(keys))
    scenario.add("lost (key never received)", len(lost))
    scenario.add("duplicated (a key received again: the sender drops it)", duplicates)
    scenario.add("keys not expected (a second message to one subscription)", len(unexpected))
    scenario.add("advanced exactly once", len(advanced))
    scenario.add("advanced more than once", len(beyond_one))
    scenario.add("advanced without its key received", len(advanced_without_delivery))
    scenario.add("failures recorded", len(failures))

    assert not lost
    assert not unexpected
    assert advanced == subscription_ids
    assert not beyond_one
    assert not advanced_without_delivery
    assert not failures
    scenario.outcome = "passed: every subscription got its message, advanced once"


def test_worker_killed_during_a_job_batch(service, postgres, target, report):
    scenario = report.scenario("1b. Worker killed (SIGKILL) during a job batch", COMMAND)
    target.behave("/job", delay=1.0, status=200)
    with service.client() as client:
        job_ids = create_jobs(client, [f"{target.url}/job"] * JOBS, delay=5, timeout=3)
    wait_until(lambda: target.count("/job") >= JOBS // 3, what="a third of the jobs to be sent", timeout=120)
    service.worker.kill()
    received_at_kill = target.count("/job")
    service.start_worker()

    def settled() -> bool:
        return all(state == "succeeded" for state, _, _ in jobs_of(postgres, job_ids).values())

    # Jobs the dead worker held are claimed again once their lease (JOBS_LEASE_SECONDS) ends.
    wait_until(settled, what="every job to succeed", timeout=150, every=0.5)

    jobs = jobs_of(postgres, job_ids)
    keys = target.keys("/job")
    deliveries = {delivery for _, delivery, _ in jobs.values()}
    never_received = deliveries - set(keys)
    duplicates = sum(count - 1 for count in keys.values())
    claimed_again = sum(1 for _, _, attempts in jobs.values() if attempts > 1)

    scenario.add("jobs (all due at once)", JOBS)
    scenario.add("received by the target when the worker was killed", received_at_kill)
    scenario.add("requests to the target", sum(keys.values()))
    scenario.add("distinct jobs received", len(set(keys) & deliveries))
    scenario.add("lost (never received, or not succeeded)", len(never_received) + (JOBS - len(jobs)))
    scenario.add("duplicated (a job received again: at-least-once)", duplicates)
    scenario.add("jobs claimed again after their lease ended", claimed_again)
    scenario.add("jobs succeeded", sum(1 for state, _, _ in jobs.values() if state == "succeeded"))

    assert len(jobs) == JOBS
    assert not never_received
    assert set(keys) == deliveries
    scenario.outcome = "passed: every job ran"
