"""Delivering claimed jobs: make the requests, record each attempt, retry, call back.

A worker is given job ids and the lease they were claimed under (the claim
counted the attempt). It reads the jobs that still hold that lease (from then on
the job has fired: a later change does not recall it), sends the requests
concurrently on the process's outbound event loop, then records each attempt and,
with a compare-and-set on the lease, each job's new state, so a job changed or
claimed again meanwhile keeps its new state. A worker that dies in between leaves
the job running; its lease expires, a dispatcher claims it again (at-least-once)
and records the unfinished attempt as lost. Database work is a few statements per
group of jobs recorded together.

`jobs_deliver` sends a chunk and records it before it returns; a worker hands its
chunks to `in_flight.deliveries` instead, which records jobs as they finish, so a
slow target never holds a worker's task (`in_flight.py`).

A job whose target's origin stays busy (OUTBOUND_CONCURRENCY_PER_ORIGIN requests of
this process in flight to it) for JOBS_ORIGIN_QUEUE_SECONDS is not sent: it is given
back, due again JOBS_ORIGIN_BUSY_DELAY seconds later, without its attempt counted.

One job never holds back the others of its chunk: a job that cannot be read, sent or
recorded (a row written around the API, a bug) has its failure recorded on its own,
and the others are sent and recorded as usual.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from core import metrics, outbound
from core.bulk import insert_rows
from core.db import prepared_cursor

from .. import clock, signing
from .. import headers as job_headers
from ..models import LOST_ATTEMPT_ERROR, SENT_FIELDS, Attempt, AttemptOutcome, Job, JobKind, JobState
from .dispatch import QUEUES_LOCK_ONLY_SQL, jobs_claim_next_queued, jobs_release_held, queues_room_signal

logger = logging.getLogger(__name__)

CODE_TYPES = {1: "informational", 2: "success", 3: "redirection", 4: "client_error", 5: "server_error"}


@dataclass
class RequestResult:
    """What one request came to."""

    response: outbound.OutboundResponse | None = None
    error: str = ""
    refused: bool = False
    started: datetime | None = None
    finished: datetime | None = None
    elapsed: float = 0.0  # seconds
    attempted: bool = True  # False: no request was made
    deferred: bool = False  # not sent: its origin stayed busy; given back without its attempt counted

    @property
    def succeeded(self) -> bool:
        return self.response is not None and 200 <= self.response.status_code < 300


def _text(data: bytes, limit: int | None = None) -> str:
    """Bytes as text that PostgreSQL can store (no NUL)."""
    if limit is not None:
        data = data[:limit]
    return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _request_headers(job: Job, number: int, body: bytes) -> dict[str, str]:
    headers = dict(job.headers)
    headers[job_headers.DELIVERY_HEADER] = str(job.delivery_id)
    headers[job_headers.ATTEMPT_HEADER] = str(number)
    if job.parent_id is not None:
        headers[job_headers.JOB_HEADER] = str(job.parent_id)
    headers.update(signing.delivery_headers(job, body, timestamp=int(time.time())))
    return headers


# The database cannot be reached: not one job's fault, so the chunk stops (its leases expire, it is claimed again).
UNREACHABLE = (OperationalError, InterfaceError)


def _unexpected(job_id, error: Exception, doing: str) -> str:
    """Log a bug met while `doing` something with one job; the error recorded for that job."""
    logger.exception("%s job %s failed unexpectedly", doing, job_id)
    return f"Unexpected error: {type(error).__name__}: {error}"


async def send(job: Job) -> RequestResult:
    """Send `job` unless every attempt was used; never raises (whatever goes wrong is this job's failure)."""
    started = time.monotonic()
    result_started = clock.now()
    try:
        if job.attempt_count > job.max_attempts:
            # Claimed once more than it may be tried: every attempt was used, the last ones lost with their workers.
            result = RequestResult(error=LOST_ATTEMPT_ERROR, attempted=False)
        else:
            result = await _request(job, job.attempt_count)
    except Exception as error:
        result = RequestResult(error=_unexpected(job.pk, error, "Sending"))
    result.started = result_started
    if job.attempt_count == 1 and result.attempted:
        metrics.observe("jobs_lateness_seconds", max((result_started - job.at).total_seconds(), 0.0))
    result.elapsed = result.response.elapsed if result.response else time.monotonic() - started
    result.finished = clock.now()
    return result


async def send_all(jobs: list[Job]) -> list[tuple[Job, RequestResult]]:
    """Send every job at once (each origin's requests bounded by the outbound engine); (job, result) pairs."""
    results = await asyncio.gather(*(send(job) for job in jobs))
    return list(zip(jobs, results, strict=True))


async def _request(job: Job, number: int) -> RequestResult:
    body = job.body.encode()
    try:
        response = await outbound.request(
            job.method,
            job.uri,
            headers=_request_headers(job, number, body),
            content=body or None,
            timeout=job.timeout,
            max_response_bytes=settings.JOBS_RESPONSE_MAX_BYTES,
            queue_timeout=settings.JOBS_ORIGIN_QUEUE_SECONDS,
            owner=job.user_id,
        )
    except outbound.OriginBusy as error:
        return RequestResult(error=str(error), attempted=False, deferred=True)
    except outbound.DestinationRefused as error:
        return RequestResult(error=str(error), refused=True)
    except outbound.OutboundError as error:
        return RequestResult(error=f"{type(error).__name__}: {error}")
    except Exception as error:  # a bug must not lose the other jobs of the chunk
        return RequestResult(error=_unexpected(job.pk, error, "Sending"))
    result = RequestResult(response=response)
    if not result.succeeded:
        result.error = f"HTTP {response.status_code}"
    return result


def next_attempt_time(job: Job, result: RequestResult, *, now: datetime) -> datetime | None:
    """When to try again after a failed attempt, or None when every retry is used.

    Retries are counted from the first attempt (10 s, 2 min, ... after it); a later
    Retry-After from the target (at most JOBS_RETRY_AFTER_MAX) wins over the retry delays.
    """
    delays = job.retry_delays
    if job.attempt_count > len(delays):
        return None
    planned = job.first_attempt_at + timedelta(seconds=delays[job.attempt_count - 1])
    if result.response is not None:
        wait = outbound.retry_after_seconds(result.response.header("Retry-After"), now=now)
        if wait is not None:
            planned = max(planned, now + timedelta(seconds=min(wait, settings.JOBS_RETRY_AFTER_MAX)))
    return planned


def response_report(response: outbound.OutboundResponse | None) -> dict:
    """The callback body: what the target answered (nulls when it did not)."""
    if response is None:
        return dict.fromkeys(
            (
                "response_http_version",
                "response_code",
                "response_code_type",
                "response_content_length",
                "response_content_type",
                "response_body",
            )
        )
    declared = response.header("Content-Length")
    length = int(declared) if declared and declared.isdigit() else None
    if length is None and not response.truncated:
        length = len(response.body)
    return {
        "response_http_version": response.http_version.removeprefix("HTTP/"),
        "response_code": response.status_code,
        "response_code_type": CODE_TYPES.get(response.status_code // 100, "unknown"),
        "response_content_length": length,
        "response_content_type": response.header("Content-Type"),
        "response_body": _text(response.body),
    }


def _callback(job: Job, kind: str, uri: str, payload: dict, now: datetime) -> Job:
    return Job(
        user_id=job.user_id,
        kind=kind,
        parent_id=job.pk,
        method="POST",
        uri=uri,
        at=now,
        headers={"Content-Type": "application/json"},
        body=json.dumps(payload),
        timeout=settings.JOBS_DEFAULT_TIMEOUT,
        state=JobState.SCHEDULED,
        next_attempt_at=now,
    )


def _attempt(job: Job, result: RequestResult) -> dict:
    """The attempt's row (see `insert_rows`)."""
    response = result.response
    if result.refused:
        outcome = AttemptOutcome.REFUSED
    else:
        outcome = AttemptOutcome.SUCCEEDED if result.succeeded else AttemptOutcome.FAILED
    attempt = {
        "job_id": job.pk,
        "number": job.attempt_count,
        "started_at": result.started,
        "duration_ms": round(result.elapsed * 1000, 3),
        "error": result.error,
        "outcome": outcome,
    }
    if response is not None:
        attempt["status_code"] = response.status_code
        attempt["http_version"] = response.http_version
        # Read as latin-1, so text already; only a NUL cannot be stored.
        attempt["response_headers"] = [
            [k.replace("\x00", "\ufffd"), v.replace("\x00", "\ufffd")] for k, v in response.headers
        ]
        attempt["body_excerpt"] = _text(response.body, settings.JOBS_ATTEMPT_EXCERPT_BYTES)
    return attempt


def _decide(job: Job, result: RequestResult, now: datetime) -> tuple[dict, list[Job]]:
    """The job's new state after `result`, and the callbacks it calls for."""
    if result.succeeded:
        changes = {"state": JobState.SUCCEEDED, "next_attempt_at": None, "finished_at": now}
        if job.kind == JobKind.REQUEST and job.callback_uri:
            report = response_report(result.response)
            return changes, [_callback(job, JobKind.CALLBACK, job.callback_uri, report, now)]
        return changes, []
    retry_at = None if result.refused else next_attempt_time(job, result, now=result.finished or now)
    if retry_at is not None:
        return {"state": JobState.SCHEDULED, "next_attempt_at": retry_at}, []
    changes = {"state": JobState.FAILED, "next_attempt_at": None, "finished_at": now}
    if job.kind == JobKind.REQUEST and job.failure_callback_uri:
        made = job.attempt_count if result.attempted else job.attempt_count - 1
        report = response_report(result.response) | {"error": result.error, "attempts": made}
        return changes, [_callback(job, JobKind.FAILURE_CALLBACK, job.failure_callback_uri, report, now)]
    return changes, []


# Recording finished jobs on PostgreSQL, in one statement: the jobs recorded locked (in id order, so that two
# records never wait for each other in a circle); each that still holds the lease it was sent under given its new
# state (the unnest: id, lease sent under, state, next attempt, finished; a finish time left NULL keeps the job's);
# then the queues whose next jobs the record claims locked, as QUEUES_LOCK_ONLY_SQL does. Answers the ids present,
# the ids changed and the queues locked. The claim of those queues' next jobs is a statement of its own after this
# one, so that it sees every claim committed before the locks were taken.
RECORD_SQL = f"""
WITH present AS (
    SELECT job.id, job.lease FROM jobs_job AS job
    WHERE job.id = ANY(%(ids)s::uuid[])
    ORDER BY job.id
    FOR UPDATE
), changed AS (
    UPDATE jobs_job AS job
    SET state = new.state, next_attempt_at = new.next_attempt_at,
        finished_at = COALESCE(new.finished_at, job.finished_at),
        lease = NULL, attempt_started_at = NULL, updated_at = %(updated_at)s
    FROM present, unnest(
        %(new_ids)s::uuid[], %(leases)s::uuid[], %(states)s::varchar[],
        %(next)s::timestamptz[], %(finished)s::timestamptz[]
    ) AS new(id, lease, state, next_attempt_at, finished_at)
    WHERE job.id = present.id AND new.id = present.id AND new.lease = present.lease
    RETURNING job.id
), queues AS ({QUEUES_LOCK_ONLY_SQL})
SELECT ARRAY(SELECT id FROM present), ARRAY(SELECT id FROM changed), ARRAY(SELECT id FROM queues)
"""  # noqa: S608 - constants only, the values are parameters


class _Recorded(NamedTuple):
    """What the start of a record did: the ids of the jobs present, of those given their new state, and the
    queues locked for the claim of their next jobs (None: left to that claim)."""

    present: set
    changed: set
    locked: list[int] | None


def _change_states_in_one_statement(
    results: list[tuple[Job, RequestResult]], decisions: dict, queues: list[int]
) -> _Recorded:
    """PostgreSQL: RECORD_SQL."""
    new = [(job, decisions[job.pk][0]) for job, _ in results if job.pk in decisions]
    parameters = {
        "ids": [job.pk for job, _ in results],
        "updated_at": timezone.now(),
        "new_ids": [job.pk for job, _ in new],
        "leases": [job.lease for job, _ in new],
        "states": [changes["state"] for _, changes in new],
        "next": [changes["next_attempt_at"] for _, changes in new],
        "finished": [changes.get("finished_at") for _, changes in new],
        "only": queues,
    }
    with prepared_cursor() as cursor:
        cursor.execute(RECORD_SQL, parameters)
        present, changed, locked = cursor.fetchone()
    return _Recorded(set(present), set(changed), locked)


def _change_states_with_queries(
    results: list[tuple[Job, RequestResult]], decisions: dict, queues: list[int]
) -> _Recorded:
    """Any database: a SELECT ... FOR UPDATE of the jobs and an UPDATE for each new state; the queues are left to
    the claim of their next jobs to lock."""
    ids = [job.pk for job, _ in results]
    present = dict(Job.objects.select_for_update().filter(pk__any_of=ids).order_by("pk").values_list("pk", "lease"))
    same_changes: dict[tuple, list] = defaultdict(list)
    for job, _ in results:
        if job.pk in decisions and present.get(job.pk) == job.lease:
            same_changes[tuple(sorted(decisions[job.pk][0].items()))].append(job.pk)
    for changes, changed_ids in same_changes.items():
        Job.objects.filter(pk__any_of=changed_ids).update(
            lease=None, attempt_started_at=None, updated_at=timezone.now(), **dict(changes)
        )
    return _Recorded(set(present), {pk for changed_ids in same_changes.values() for pk in changed_ids}, None)


def _change_states(results: list[tuple[Job, RequestResult]], decisions: dict, queues: list[int]) -> _Recorded:
    """Lock the jobs of `results` and give each that still holds the lease it was sent under the new state
    `decisions` holds for it (a deferred job has none: it is given back after); on PostgreSQL, also lock the
    queues `queues` names, for the claim of their next jobs, in the same statement."""
    change = _change_states_in_one_statement if connection.vendor == "postgresql" else _change_states_with_queries
    return change(results, decisions, queues)


def _record(
    results: list[tuple[Job, RequestResult]], now: datetime, *, claim_next: bool = False, again: bool = False
) -> list[Job]:
    """Record each attempt, and each job's new state if it still holds the lease it was sent under
    (it may have changed meanwhile). A deferred job is given back, due again shortly, its attempt not counted.

    With `claim_next`, the queued jobs recorded are followed, in the same transaction, by the next due jobs
    of their queues (as many as the queues have room for, no more than were recorded): the jobs claimed (read).
    With `again`, the same results may have been recorded already (see `_not_yet_recorded`)."""
    decisions = {job.pk: _decide(job, result, now) for job, result in results if not result.deferred}
    queued = [job.queue_id for job, _ in results if job.queue_id is not None]
    with transaction.atomic():
        recorded = _change_states(results, decisions, sorted(set(queued)) if claim_next else [])
        attempts = [_attempt(job, result) for job, result in results if result.attempted and job.pk in recorded.present]
        if again:
            attempts = _not_yet_recorded(attempts)
        insert_rows(Attempt, attempts)
        Job.objects.bulk_create(
            [callback for job, _ in results if job.pk in recorded.changed for callback in decisions[job.pk][1]]
        )
        deferred = jobs_release_held(
            [job for job, result in results if result.deferred],
            due_at=now + timedelta(seconds=settings.JOBS_ORIGIN_BUSY_DELAY),
        )
        successors = []
        if queued and claim_next:
            successors = jobs_claim_next_queued(now=now, queue_ids=queued, limit=len(queued), locked=recorded.locked)
        if len(successors) < len(queued):
            # Room left that this claim did not fill (a queue with nothing due, paused or out of tokens, or, without
            # PostgreSQL, another claim held it): the dispatchers need not wait for their interval to look.
            queues_room_signal()
    kinds = {job.pk: job.kind for job, _ in results}
    dead = [
        job.kind
        for job, _ in results
        if job.pk in recorded.changed and decisions[job.pk][0]["state"] == JobState.FAILED
    ]
    transaction.on_commit(partial(_count_recorded, attempts, kinds, dead, deferred))
    return successors


def _attempt_key(attempt: dict) -> tuple:
    return attempt["job_id"], attempt["number"], attempt["started_at"]


def _not_yet_recorded(attempts: list[dict]) -> list[dict]:
    """Those of `attempts` not stored already. A record tried again because the database could not be reached
    may have been committed the first time (the connection broke while the commit was answered): its jobs'
    states are safe (they no longer hold the lease they were sent under), their attempts would be stored twice."""
    if not attempts:
        return attempts
    ids = [attempt["job_id"] for attempt in attempts]
    stored = set(Attempt.objects.filter(job__in=ids).values_list("job_id", "number", "started_at"))
    return [attempt for attempt in attempts if _attempt_key(attempt) not in stored]


def _count_recorded(attempts: list[dict], kinds: dict, dead: list[str], deferred: int) -> None:
    """The metrics of what `_record` committed: attempts by outcome and kind, dead letters, deferrals."""
    for attempt in attempts:
        metrics.count("jobs_delivered", 1, attempt["outcome"], kinds[attempt["job_id"]])
    for kind in dead:
        metrics.count("jobs_dead_letters", 1, kind)
    if deferred:
        metrics.count("jobs_deferred", deferred)


def _record_failure(job_id, lease: str, started: datetime, now: datetime, error: str) -> None:
    """Record that a job could not be handled: failed (the dead-letter list), if it still holds `lease`.

    Reads and writes nothing of the job but its id, attempt count and state, so it holds for any row.
    """
    with transaction.atomic():
        numbers = list(
            Job.objects.select_for_update().filter(pk=job_id, lease=lease).values_list("attempt_count", flat=True)
        )
        if not numbers:
            return
        Attempt.objects.create(
            job_id=job_id, number=numbers[0], started_at=started, outcome=AttemptOutcome.FAILED, error=error
        )
        failed = {"job_id": job_id, "outcome": AttemptOutcome.FAILED}
        transaction.on_commit(partial(_count_recorded, [failed], {job_id: "unknown"}, ["unknown"], 0))
        Job.objects.filter(pk=job_id).update(
            state=JobState.FAILED,
            next_attempt_at=None,
            finished_at=now,
            lease=None,
            attempt_started_at=None,
            updated_at=timezone.now(),
        )


def _each_alone(job_ids: list, work, lease: str, started: datetime, what: str) -> list:
    """`work(job_id)` for each job on its own; a job whose work raises is recorded as failed instead."""
    done = []
    for job_id in job_ids:
        try:
            with transaction.atomic():
                done.append(work(job_id))
        except UNREACHABLE:
            raise
        except Exception as error:
            message = _unexpected(job_id, error, what)
            try:
                _record_failure(job_id, lease, started, clock.now(), message)
            except UNREACHABLE:
                raise
            except DatabaseError:
                logger.exception("Recording the failure of job %s failed; its lease will expire", job_id)
    return done


def _claimed(job_ids: list[str], lease: str, started: datetime) -> list[Job]:
    """The jobs of `job_ids` that still hold `lease`, read at once, or one by one when a row cannot be read.

    A claim's lease is its chunk's own, so the chunk is read by its lease; the ids keep out any other
    job under it (a task queued before leases were per chunk named part of a larger claim).
    """
    claimed = Job.objects.filter(lease=lease, state=JobState.RUNNING).only(*SENT_FIELDS)
    try:
        wanted = set(job_ids)
        return [job for job in claimed if str(job.pk) in wanted]
    except UNREACHABLE:
        raise
    except Exception:
        logger.exception("Reading %d claimed jobs at once failed; reading each on its own", len(job_ids))
    found = _each_alone(job_ids, lambda job_id: claimed.filter(pk=job_id).first(), lease, started, "Reading")
    return [job for job in found if job is not None]


def record_results(
    results: list[tuple[Job, RequestResult]], *, claim_next: bool = False, again: bool = False
) -> list[Job]:
    """Record the jobs in one transaction or, when that fails, each job in its own; with `claim_next`, the
    claims of their queues' next jobs made meanwhile; `again` when the same results were given before and
    the database could not be reached (see `_record`)."""
    try:
        return _record(results, clock.now(), claim_next=claim_next, again=again)
    except UNREACHABLE:
        raise
    except Exception:
        logger.exception("Recording %d jobs at once failed; recording each on its own", len(results))
    for job, result in results:
        alone = [(job, result)]
        _each_alone(
            [job.pk],
            lambda _, alone=alone: _record(alone, clock.now(), again=again),
            job.lease,
            result.started,
            "Recording",
        )
    return []


def jobs_claimed(*, job_ids: list[str], lease: str) -> list[Job]:
    """The jobs claimed under `lease` that still hold it, with their owners' signing keys.

    What is read here is what is sent: a change committed after this read is too late for this attempt.
    """
    jobs = _claimed(job_ids, lease, clock.now())
    signing.signing_keys_attach(jobs)  # each owner's keys, read once for the chunk
    return jobs


def jobs_deliver(*, job_ids: list[str], lease: str) -> int:
    """Send the jobs claimed under `lease` that still hold it, and record what came of it before
    returning; how many were sent."""
    jobs = jobs_claimed(job_ids=job_ids, lease=lease)
    if not jobs:
        return 0
    results = outbound.run(send_all(jobs))
    record_results(results)
    return sum(1 for _, result in results if result.attempted)
