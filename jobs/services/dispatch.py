"""Claiming due jobs and handing them to workers.

The database is the source of truth. A job is due when it is scheduled and its
next_attempt_at has come, or when it is running and its lease (next_attempt_at)
has expired because the worker that held it was lost. A dispatcher claims due
jobs with `SELECT ... FOR UPDATE SKIP LOCKED` and, in the same transaction, marks
them running under a new lease and counts their attempt, so two dispatchers never
claim one job. After
the commit it queues them for the workers in chunks. A worker sends only a job
that still holds that lease, so a job changed or deleted since the claim is not
sent in its old form, and a stale task (redelivered by the broker) does nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Min, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from ..models import ACTIVE_STATES, LOST_ATTEMPT_ERROR, Attempt, AttemptOutcome, Job, JobState

# The claim in one statement on PostgreSQL: lock the due rows (skipping those another claim holds)
# and mark them, answering what they were before (for the attempts the claim finds lost).
CLAIM_SQL = """
WITH due AS (
    SELECT id, attempt_count, attempt_started_at, extract(epoch FROM next_attempt_at) AS due_at FROM jobs_job
    WHERE state IN ('scheduled', 'running') AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs_job AS job
SET state = 'running', lease = %(lease)s, next_attempt_at = %(lease_ends)s,
    attempt_count = job.attempt_count + 1, attempt_started_at = %(now)s,
    first_attempt_at = COALESCE(job.first_attempt_at, %(now)s)
FROM due
WHERE job.id = due.id
RETURNING due.id, due.attempt_count, due.attempt_started_at, due.due_at
"""


def _claim_in_one_statement(*, now: datetime, limit: int, lease: uuid.UUID) -> list[tuple]:
    """PostgreSQL: the due rows claimed by one UPDATE, oldest first; (id, attempt count, attempt started)
    as they were."""
    lease_ends = now + timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, {"now": now, "limit": limit, "lease": lease, "lease_ends": lease_ends})
        rows = cursor.fetchall()
    return [(job_id, number, started) for job_id, number, started, _ in sorted(rows, key=lambda row: row[3])]


def _claim_with_queries(*, now: datetime, limit: int, lease: uuid.UUID) -> list[tuple]:
    """Any database: the same claim as a SELECT ... FOR UPDATE SKIP LOCKED and an UPDATE."""
    rows = list(
        Job.objects.select_for_update(skip_locked=True)
        .filter(state__in=ACTIVE_STATES, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("id", "attempt_count", "attempt_started_at")[:limit]
    )
    Job.objects.filter(id__in=[job_id for job_id, _, _ in rows]).update(
        state=JobState.RUNNING,
        lease=lease,
        next_attempt_at=now + timedelta(seconds=settings.JOBS_LEASE_SECONDS),
        attempt_count=F("attempt_count") + 1,
        attempt_started_at=now,
        first_attempt_at=Coalesce("first_attempt_at", Value(now)),
    )
    return rows


def jobs_claim_due(*, now: datetime, limit: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Claim up to `limit` due jobs, oldest first, under a new lease, counting their attempt; (lease, ids).

    A job claimed again because its lease expired had its attempt lost: it is recorded so.
    Call it inside a transaction to hold the claimed rows until that commits.
    """
    lease = uuid.uuid4()
    claim = _claim_in_one_statement if connection.vendor == "postgresql" else _claim_with_queries
    with transaction.atomic():
        rows = claim(now=now, limit=limit, lease=lease)
        Attempt.objects.bulk_create(
            Attempt(
                job_id=job_id, number=number, started_at=started, outcome=AttemptOutcome.LOST, error=LOST_ATTEMPT_ERROR
            )
            for job_id, number, started in rows
            if started is not None
        )
    return lease, [job_id for job_id, _, _ in rows]


def jobs_release(*, lease: uuid.UUID, ids: list[uuid.UUID], due_at: datetime | None = None) -> int:
    """Give back jobs claimed under `lease` that were never sent, as if the claim had not been made
    (its attempt is not counted): due again at `due_at`, or at once; how many."""
    return Job.objects.filter(id__in=ids, lease=lease, state=JobState.RUNNING).update(
        state=JobState.SCHEDULED,
        lease=None,
        next_attempt_at=F("attempt_started_at") if due_at is None else Value(due_at),
        attempt_count=F("attempt_count") - 1,
        attempt_started_at=None,
        first_attempt_at=Case(When(attempt_count=1, then=Value(None)), default=F("first_attempt_at")),
        updated_at=timezone.now(),
    )


def _enqueue(lease: uuid.UUID, ids: list[uuid.UUID]) -> None:
    """Queue the claimed jobs for the workers; when the broker cannot be reached, the jobs not queued
    are released (not left to wait for their lease) and the error goes to the dispatcher."""
    from ..tasks import deliver_jobs

    size = settings.JOBS_DELIVERY_CHUNK
    for start in range(0, len(ids), size):
        try:
            deliver_jobs.delay([str(job_id) for job_id in ids[start : start + size]], str(lease))
        except BrokerUnreachable:
            jobs_release(lease=lease, ids=ids[start:])
            raise


def jobs_next_due() -> datetime | None:
    """When the next scheduled or running job is due (a running one when its lease ends), or None."""
    return Job.objects.filter(state__in=ACTIVE_STATES).aggregate(due=Min("next_attempt_at"))["due"]


def jobs_in_flight() -> int:
    """Jobs claimed and not yet recorded: queued for a worker or being sent."""
    return Job.objects.filter(state=JobState.RUNNING).count()


def jobs_dispatch_due(*, now: datetime, limit: int | None = None) -> int:
    """Claim due jobs and queue them for the workers once the claim is committed; how many.

    No more than JOBS_MAX_IN_FLIGHT jobs are claimed and unrecorded at a time: when the
    workers fall behind, due jobs wait in the database, not in the broker's queue
    (where their leases would run out).
    """
    room = settings.JOBS_MAX_IN_FLIGHT - jobs_in_flight()
    limit = min(limit or settings.JOBS_DISPATCH_BATCH, room)
    if limit <= 0:
        return 0
    with transaction.atomic():
        lease, ids = jobs_claim_due(now=now, limit=limit)
        if ids:
            transaction.on_commit(partial(_enqueue, lease, ids))
    return len(ids)
