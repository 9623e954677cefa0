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

One claim is cut into chunks of JOBS_DELIVERY_CHUNK jobs, one task each, and each
chunk has a lease of its own: a worker reads its chunk by its lease (an index), not
by a list of ids.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Min, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from core import metrics

from ..models import ACTIVE_STATES, LOST_ATTEMPT_ERROR, Attempt, AttemptOutcome, Job, JobState

# The claim in one statement on PostgreSQL: lock the due rows (skipping those another claim holds)
# and mark them, each chunk of them under a lease of its own, answering what they were before
# (for the attempts the claim finds lost).
CLAIM_SQL = """
WITH due AS (
    SELECT id, attempt_count, attempt_started_at, next_attempt_at FROM jobs_job
    WHERE state IN ('scheduled', 'running') AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), ranked AS (
    SELECT due.*, row_number() OVER (ORDER BY next_attempt_at) - 1 AS position FROM due
)
UPDATE jobs_job AS job
SET state = 'running', lease = (%(leases)s::uuid[])[ranked.position / %(chunk)s + 1],
    next_attempt_at = %(lease_ends)s, attempt_count = job.attempt_count + 1, attempt_started_at = %(now)s,
    first_attempt_at = COALESCE(job.first_attempt_at, %(now)s)
FROM ranked
WHERE job.id = ranked.id
RETURNING ranked.id, ranked.attempt_count, ranked.attempt_started_at, ranked.position
"""


class Claim(NamedTuple):
    """Jobs claimed together under one lease, oldest first: one worker's task."""

    lease: uuid.UUID
    ids: list[uuid.UUID]


def _claim_in_one_statement(*, now: datetime, limit: int, leases: list[uuid.UUID], chunk: int) -> list[tuple]:
    """PostgreSQL: the due rows claimed by one UPDATE, oldest first; (id, attempt count, attempt started,
    lease) with the first three as they were."""
    lease_ends = now + timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    with connection.cursor() as cursor:
        parameters = {"now": now, "limit": limit, "leases": leases, "chunk": chunk, "lease_ends": lease_ends}
        cursor.execute(CLAIM_SQL, parameters)
        rows = cursor.fetchall()
    rows.sort(key=lambda row: row[3])
    return [(job_id, number, started, leases[position // chunk]) for job_id, number, started, position in rows]


def _claim_with_queries(*, now: datetime, limit: int, leases: list[uuid.UUID], chunk: int) -> list[tuple]:
    """Any database: the same claim as a SELECT ... FOR UPDATE SKIP LOCKED and an UPDATE per chunk."""
    rows = list(
        Job.objects.select_for_update(skip_locked=True)
        .filter(state__in=ACTIVE_STATES, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("id", "attempt_count", "attempt_started_at")[:limit]
    )
    for index, lease in enumerate(leases):
        Job.objects.filter(id__in=[job_id for job_id, _, _ in rows[index * chunk : (index + 1) * chunk]]).update(
            state=JobState.RUNNING,
            lease=lease,
            next_attempt_at=now + timedelta(seconds=settings.JOBS_LEASE_SECONDS),
            attempt_count=F("attempt_count") + 1,
            attempt_started_at=now,
            first_attempt_at=Coalesce("first_attempt_at", Value(now)),
        )
    return [(*row, leases[index // chunk]) for index, row in enumerate(rows)]


def jobs_claim_due(*, now: datetime, limit: int) -> list[Claim]:
    """Claim up to `limit` due jobs, oldest first, counting their attempt, in chunks of
    JOBS_DELIVERY_CHUNK jobs, each under a new lease of its own.

    A job claimed again because its lease expired had its attempt lost: it is recorded so.
    Call it inside a transaction to hold the claimed rows until that commits.
    """
    chunk = settings.JOBS_DELIVERY_CHUNK
    leases = [uuid.uuid4() for _ in range(math.ceil(limit / chunk))]
    claim = _claim_in_one_statement if connection.vendor == "postgresql" else _claim_with_queries
    with transaction.atomic():
        rows = claim(now=now, limit=limit, leases=leases, chunk=chunk)
        Attempt.objects.bulk_create(
            Attempt(
                job_id=job_id, number=number, started_at=started, outcome=AttemptOutcome.LOST, error=LOST_ATTEMPT_ERROR
            )
            for job_id, number, started, _ in rows
            if started is not None
        )
    lost = sum(1 for row in rows if row[2] is not None)
    if lost:
        transaction.on_commit(partial(metrics.count, "jobs_delivered", lost, AttemptOutcome.LOST, "unknown"))
    claims: dict[uuid.UUID, list[uuid.UUID]] = {}
    for job_id, _, _, lease in rows:
        claims.setdefault(lease, []).append(job_id)
    return [Claim(lease, ids) for lease, ids in claims.items()]


def jobs_release(*, lease: uuid.UUID, ids: list[uuid.UUID], due_at: datetime | None = None) -> int:
    """Give back jobs claimed under `lease` that were never sent, as if the claim had not been made
    (its attempt is not counted): due again at `due_at`, or at once; how many."""
    return Job.objects.filter(id__any_of=ids, lease=lease, state=JobState.RUNNING).update(
        state=JobState.SCHEDULED,
        lease=None,
        next_attempt_at=F("attempt_started_at") if due_at is None else Value(due_at),
        attempt_count=F("attempt_count") - 1,
        attempt_started_at=None,
        first_attempt_at=Case(When(attempt_count=1, then=Value(None)), default=F("first_attempt_at")),
        updated_at=timezone.now(),
    )


def _enqueue(claims: list[Claim]) -> None:
    """Queue each claim for a worker; when the broker cannot be reached, the claims not queued
    are released (not left to wait for their leases) and the error goes to the dispatcher."""
    from ..tasks import deliver_jobs

    for index, (lease, ids) in enumerate(claims):
        try:
            deliver_jobs.delay([str(job_id) for job_id in ids], str(lease))
        except BrokerUnreachable:
            for unsent in claims[index:]:
                jobs_release(lease=unsent.lease, ids=unsent.ids)
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
        claims = jobs_claim_due(now=now, limit=limit)
        if claims:
            transaction.on_commit(partial(_enqueue, claims))
    claimed = sum(len(claim.ids) for claim in claims)
    if claimed:
        metrics.count("jobs_claimed", claimed)
    return claimed
