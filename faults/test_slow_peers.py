"""Scenario 4: a message sender and a job target that never answer, beside ones that do.

At once: a schedule whose subscribers' messages the sender holds without ever
answering, another schedule whose messages it accepts, jobs to a target that
never answers (timeout 1 s, with a failure callback), jobs to a target that fails
twice (503) then answers, and jobs to a target that answers at once.

Expected: the sender's requests time out (SEND_TIMEOUT) and are retried after each
of SEND_RETRY_DELAYS, then recorded as failures, the subscriptions left where they
were; the hanging job's attempts time out and follow JOBS_RETRY_SCHEDULE (an
attempt never before its time) until the job fails and its failure callback is
called; the flaky job succeeds on its third attempt. Meanwhile the other work
finishes: the workers are not all stuck. Once the sender answers again, requeueing
the failures sends each held message, and each subscription advances once.
"""

from __future__ import annotations

from datetime import timedelta

from harness.waiting import wait_until

from .helpers import (
    attempts_of,
    create_jobs,
    fire,
    first_attempts,
    jobs_of,
    make_schedule,
    send_failures,
    send_finished,
    subscriptions_of,
)

COMMAND = ".venv/bin/pytest faults/test_slow_peers.py"
SEND_ATTEMPTS = 3  # 1 + len(SEND_RETRY_DELAYS = 0.5,1)
JOB_RETRY_SCHEDULE = [2, 4, 6]  # JOBS_RETRY_SCHEDULE
HELD, ANSWERED = 8, 40
HANGING_JOBS, FLAKY_JOBS, FAST_JOBS = 3, 3, 20


def test_hanging_sender_and_job_target(service, postgres, sender, target, report):
    scenario = report.scenario("4. A message sender and a job target that hang", COMMAND)
    sender.behave("/outbound/", status=201)
    sender.behave("/outbound/", hang=True, match=b'"to_identity":"held-')
    target.behave("/hang", hang=True)
    target.behave("/flaky", fail_first=2, status=200)
    target.behave("/fast", status=200)
    target.behave("/failed", status=200)
    held_schedule = make_schedule(service, name="held", count=HELD, prefix="held-")
    answered_schedule = make_schedule(service, name="answered", count=ANSWERED, prefix="answered-")

    with service.client() as client:
        fire(client, held_schedule)
        fire(client, answered_schedule)
        hanging = create_jobs(
            client, [f"{target.url}/hang"] * HANGING_JOBS, timeout=1, failure_callback_uri=f"{target.url}/failed"
        )
        flaky = create_jobs(client, [f"{target.url}/flaky"] * FLAKY_JOBS, timeout=2)
        fast = create_jobs(client, [f"{target.url}/fast"] * FAST_JOBS, timeout=2)

        def other_work_done() -> bool:
            states = jobs_of(postgres, fast)
            return send_finished(postgres, answered_schedule) and all(s == "succeeded" for s, _, _ in states.values())

        wait_until(other_work_done, what="the answered sends and the fast jobs", timeout=60, every=0.2)
        held_still_open = sender.holding("/outbound/")
        held_send_unfinished = not send_finished(postgres, held_schedule)

        wait_until(lambda: send_finished(postgres, held_schedule), what="the held send to give up", timeout=90)
        held_positions = subscriptions_of(postgres, held_schedule)
        failures = send_failures(postgres, held_schedule)
        attempts_per_key = sender.keys("/outbound/")
        held_keys = {f"{subscription_id}:1" for subscription_id in held_positions}

        def jobs_settled() -> bool:
            states = jobs_of(postgres, hanging + flaky)
            return all(state in ("failed", "succeeded") for state, _, _ in states.values())

        wait_until(jobs_settled, what="the hanging and flaky jobs to settle", timeout=90, every=0.5)
        # A failure callback is a request of its own, made after the job is recorded as failed.
        wait_until(lambda: target.count("/failed") >= HANGING_JOBS, what="the failure callbacks", timeout=30, every=0.2)
        failure_callbacks = target.count("/failed")

        # The sender answers again: requeueing the recorded failures sends the held messages.
        sender.unhang("/outbound/", status=201)
        response = client.post("/api/v1/failed-tasks/")
        assert response.status_code == 201, response.text

        def requeued() -> bool:
            return all(number == 2 for number in subscriptions_of(postgres, held_schedule).values())

        wait_until(requeued, what="the requeued messages to be sent", timeout=60, every=0.3)

    answered_positions = subscriptions_of(postgres, answered_schedule)
    final_positions = subscriptions_of(postgres, held_schedule)
    final_keys = sender.keys("/outbound/")
    job_states = jobs_of(postgres, hanging + flaky + fast)
    attempts = attempts_of(postgres, hanging + flaky)
    firsts = first_attempts(postgres, hanging + flaky)
    early = [
        (job_id, number)
        for job_id, number, _, _, started in attempts
        if number > 1 and started < firsts[job_id] + timedelta(seconds=JOB_RETRY_SCHEDULE[number - 2])
    ]
    hanging_attempts = [row for row in attempts if row[0] in hanging]
    flaky_attempts = [row for row in attempts if row[0] in flaky]
    timed_out = [row for row in hanging_attempts if "timeout" in row[3].lower() or "timed out" in row[3].lower()]
    timeout_failures = [row for row in failures if "timeout" in row[2].lower() or "timed out" in row[2].lower()]

    scenario.add("held messages (the sender never answers) / answered messages", f"{HELD} / {ANSWERED}")
    scenario.add(
        "answered sends and fast jobs done while held requests were still open",
        "yes" if held_still_open and held_send_unfinished else "no",
    )
    scenario.add(
        "requests to the sender per held message (1 + SEND_RETRY_DELAYS)",
        sorted({attempts_per_key[key] for key in held_keys}),
    )
    scenario.add("held messages recorded as failed (a timeout)", f"{len(failures)} ({len(timeout_failures)})")
    scenario.add("held subscriptions advanced before the requeue", sum(1 for n in held_positions.values() if n > 1))
    scenario.add("answered subscriptions advanced once", sum(1 for n in answered_positions.values() if n == 2))
    scenario.add(
        "held subscriptions advanced once after the requeue", sum(1 for n in final_positions.values() if n == 2)
    )
    scenario.add("held messages lost", sum(1 for key in held_keys if final_keys[key] == 0))
    scenario.add("jobs: hanging / flaky / fast", f"{HANGING_JOBS} / {FLAKY_JOBS} / {FAST_JOBS}")
    scenario.add(
        "hanging jobs: attempts each (1 + JOBS_RETRY_SCHEDULE), timed out",
        f"{sorted({count for _, _, count in jobs_of(postgres, hanging).values()})}, {len(timed_out)} of "
        f"{len(hanging_attempts)}",
    )
    scenario.add(
        "hanging jobs: state / failure callbacks received",
        f"{sorted({job_states[j][0] for j in hanging})} / {failure_callbacks}",
    )
    scenario.add(
        "flaky jobs: attempts each / state",
        f"{sorted({job_states[j][2] for j in flaky})} / {sorted({job_states[j][0] for j in flaky})}",
    )
    scenario.add("fast jobs succeeded", sum(1 for j in fast if job_states[j][0] == "succeeded"))
    scenario.add("retries made before their time in the schedule", len(early))

    assert held_still_open and held_send_unfinished
    assert {attempts_per_key[key] for key in held_keys} == {SEND_ATTEMPTS}
    assert len(timeout_failures) == HELD
    assert all(number == 1 for number in held_positions.values())
    assert all(number == 2 for number in answered_positions.values())
    assert all(number == 2 for number in final_positions.values())
    assert all(job_states[j][0] == "failed" and job_states[j][2] == 1 + len(JOB_RETRY_SCHEDULE) for j in hanging)
    assert len(timed_out) == len(hanging_attempts) == HANGING_JOBS * (1 + len(JOB_RETRY_SCHEDULE))
    assert failure_callbacks == HANGING_JOBS
    assert all(job_states[j][0] == "succeeded" and job_states[j][2] == 3 for j in flaky)
    assert len(flaky_attempts) == 3 * FLAKY_JOBS
    assert all(job_states[j][0] == "succeeded" for j in fast)
    assert not early
    scenario.outcome = "passed: timeouts fired, retries followed their schedules, other work went on"
