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

Jobs in a queue (`JobQueue`) are claimed first, each queue's no more than its room:
its parallelism less its jobs running under unexpired leases, and the whole tokens of
its bucket (refilled at its rate up to max(1, rate) by the time the claim is made at),
nothing of a paused one. Then jobs without a queue fill the rest of the claim, exactly
as before queues: the two kinds are read by separate partial indexes, so queued jobs
waiting (a paused or full queue) are never scanned by the claim of the others.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from datetime import datetime, timedelta
from functools import cache, partial
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, DateTimeField, F, Min, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from core import metrics
from core.db import prepared_cursor

from .. import clock as job_clock
from .. import values
from ..models import (
    ACTIVE_STATES,
    LOST_ATTEMPT_ERROR,
    SENT_FIELDS,
    Attempt,
    AttemptOutcome,
    Job,
    JobQueue,
    JobState,
    earliest,
)
from ..signing import VALID_SECRETS_READ, valid_secrets_read
from .recurring import recurring_next_run

# The claim in one statement on PostgreSQL: lock the due rows (skipping those another claim holds)
# and mark them, each chunk of them under a lease of its own (a RETURNING clause follows: CLAIMED, or
# CLAIMED_JOBS).
CLAIM_SQL = """
WITH due AS (
    SELECT id, attempt_count, attempt_started_at, next_attempt_at FROM jobs_job
    WHERE state IN ('scheduled', 'running') AND next_attempt_at <= %(now)s AND queue_id IS NULL
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), taken AS (
    SELECT due.*, row_number() OVER (ORDER BY next_attempt_at) - 1 AS position FROM due
)
UPDATE jobs_job AS job
SET state = 'running', lease = (%(leases)s::uuid[])[taken.position / %(chunk)s + 1],
    next_attempt_at = %(lease_ends)s, attempt_count = job.attempt_count + 1, attempt_started_at = %(now)s,
    first_attempt_at = COALESCE(job.first_attempt_at, %(now)s)
FROM taken
WHERE job.id = taken.id
"""

# The tokens of a queue's bucket at %(now)s: refilled at its rate since tokens_at, up to its burst (max(1, rate));
# full when tokens_at is empty; NULL when it has no rate.
_TOKENS = """
CASE
    WHEN queue.rate_per_second IS NULL THEN NULL
    WHEN queue.tokens_at IS NULL THEN GREATEST(1, queue.rate_per_second)
    ELSE LEAST(
        GREATEST(1, queue.rate_per_second),
        queue.tokens + queue.rate_per_second * GREATEST(0, EXTRACT(EPOCH FROM %(now)s - queue.tokens_at))::float8
    )
END
"""
# When the queue's bucket next holds a whole token (rounded up to the microsecond, so that a claim made then finds
# it; a rate too small to refill within 3e9 seconds counts as that); NULL when it has no rate or is full.
_BUCKET_REFILLED_AT = """
queue.tokens_at + make_interval(secs => ceil(LEAST(3e9, (1 - queue.tokens) / queue.rate_per_second) * 1e6) / 1e6)
"""
# The queues a claim may take jobs of, locked (skipping those another claim holds) before their room is
# counted: not paused, with due jobs, and not full or out of tokens by what this statement sees (the room
# is counted again under the lock, in QUEUED_CLAIM_SQL). A queue with no room is not locked. Whether a queue
# has a due job is asked of its own entries in jobs_job_queue_due (OFFSET 0 keeps the planner from reading
# every queue's due jobs first, as it does for a backlog when the table has no statistics yet).
QUEUES_LOCK_SQL = f"""
SELECT queue.id FROM jobs_jobqueue AS queue
WHERE NOT queue.paused
    AND EXISTS (
        SELECT FROM jobs_job AS job
        WHERE job.queue_id = queue.id AND job.state IN ('scheduled', 'running') AND job.next_attempt_at <= %(now)s
        OFFSET 0
    )
    AND (queue.parallelism IS NULL OR queue.parallelism > (
        SELECT count(*) FROM jobs_job AS job
        WHERE job.queue_id = queue.id AND job.state = 'running' AND job.next_attempt_at > %(now)s
    ))
    AND COALESCE({_TOKENS} >= 1 - 1e-9, true)
FOR NO KEY UPDATE OF queue SKIP LOCKED
"""  # noqa: S608 - constants only, the values are parameters
# The few queues a worker just recorded jobs of (`only`), locked without looking for room first, since most have
# it (their jobs were just recorded); QUEUED_CLAIM_SQL counts it. A queue another claim holds (the other worker
# process recording the same queue's jobs) is waited for, not skipped: the room stays with the worker whose job
# left it, rather than going round the dispatchers and the broker to any worker (which let one process gather
# most of the queues' jobs while the others idled). The locks are taken in id order, so two records never wait
# for each other in a circle; the dispatchers' locks skip.
QUEUES_LOCK_ONLY_SQL = """
SELECT queue.id FROM jobs_jobqueue AS queue
WHERE queue.id = ANY(%(only)s::bigint[]) AND NOT queue.paused
ORDER BY queue.id
FOR NO KEY UPDATE OF queue
"""
# The claim of queued jobs on PostgreSQL, a statement after QUEUES_LOCK_SQL (so that it sees every claim
# committed before the locks were taken): each locked queue's room (its parallelism less its jobs running
# under unexpired leases; the whole tokens of its bucket), up to that many of its due jobs, oldest first,
# locked; the oldest `limit` of them marked as CLAIM_SQL does, placed queue by queue (each queue's oldest first),
# so that a queue's jobs share a chunk, and so a worker; the tokens they use taken from the buckets. A worker
# records a queue's jobs and claims its next ones under a lock of the queue (RECORD_SQL): jobs of one queue held
# by two workers would have each worker's record wait for the other's to commit.
QUEUED_CLAIM_SQL = f"""
WITH open AS (
    SELECT queue.id, queue.parallelism, queue.rate_per_second, {_TOKENS} AS tokens
    FROM jobs_jobqueue AS queue
    WHERE queue.id = ANY(%(queues)s)
), room AS (
    SELECT open.id, open.rate_per_second, open.tokens, GREATEST(0, LEAST(
        %(limit)s,
        open.parallelism - (
            SELECT count(*) FROM jobs_job AS job
            WHERE job.queue_id = open.id AND job.state = 'running' AND job.next_attempt_at > %(now)s
        ),
        floor(open.tokens + 1e-9)
    ))::bigint AS room
    FROM open
), due AS (
    SELECT picked.* FROM room CROSS JOIN LATERAL (
        SELECT job.id, job.queue_id, job.attempt_count, job.attempt_started_at, job.next_attempt_at
        FROM jobs_job AS job
        WHERE job.queue_id = room.id AND job.state IN ('scheduled', 'running') AND job.next_attempt_at <= %(now)s
        ORDER BY job.next_attempt_at
        LIMIT room.room
        FOR UPDATE SKIP LOCKED
    ) AS picked
), ranked AS (
    SELECT due.*, row_number() OVER (ORDER BY next_attempt_at, id) AS age FROM due
), taken AS (
    SELECT ranked.*, row_number() OVER (ORDER BY queue_id, next_attempt_at, id) - 1 AS position
    FROM ranked WHERE age <= %(limit)s
), spent AS (
    UPDATE jobs_jobqueue AS queue SET tokens = room.tokens - used.count, tokens_at = %(now)s
    FROM room, (SELECT queue_id, count(*) AS count FROM taken GROUP BY queue_id) AS used
    WHERE queue.id = used.queue_id AND room.id = used.queue_id AND room.rate_per_second IS NOT NULL
)
UPDATE jobs_job AS job
SET state = 'running', lease = (%(leases)s::uuid[])[taken.position / %(chunk)s + 1],
    next_attempt_at = %(lease_ends)s, attempt_count = job.attempt_count + 1, attempt_started_at = %(now)s,
    first_attempt_at = COALESCE(job.first_attempt_at, %(now)s)
FROM taken
WHERE job.id = taken.id
"""  # noqa: S608 - constants only, the values are parameters


# What a claim answers of each job (RETURNING): its id, attempt count and attempt start as they were before
# (for the attempts the claim finds lost), and its place in the claim.
CLAIMED = "taken.id, taken.attempt_count, taken.attempt_started_at, taken.position"
# For a claim that reads its jobs: the job as it is sent (SENT_FIELDS, as they are once claimed), its keyring's
# valid secrets (`valid_secrets`, so that it is signed without a query of its own), then as CLAIMED.
CLAIMED_JOBS = ", ".join(
    [f"job.{Job._meta.get_field(name).column}" for name in SENT_FIELDS]
    + [
        f"{VALID_SECRETS_READ} AS valid_secrets",
        "taken.attempt_count AS claimed_attempt_count",
        "taken.attempt_started_at AS claimed_attempt_started_at",
        "taken.position AS claimed_position",
    ]
)


# Where a dispatcher waiting between claims hears that a queue may have room again (PostgreSQL LISTEN/NOTIFY).
ROOM_CHANNEL = "jobs_queue_room"


def queues_room_signal() -> None:
    """Tell the dispatchers waiting between claims that queues may have room again (a queued job was
    recorded, a queue was changed): on PostgreSQL a NOTIFY, sent when the transaction commits; elsewhere
    nothing (the dispatchers look again within JOBS_DISPATCH_INTERVAL_MS)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [ROOM_CHANNEL])


# When the dispatchers next have work (`jobs_next_due`), in one statement: the earliest of the next due job
# without a queue, the time each open queue next has a job it has room for (read from its own index entries),
# and the next recurring job's run time; read back within EARLIEST..LATEST (a time written around the API may
# lie past what Python holds), NULL when there is none. MATERIALIZED: the earliest is read once, not once for
# each mention in the clamp.
#
# A queue's time is its next job's (scheduled, or running until its lease ends), but no sooner than its room:
# a queue holding `parallelism` jobs under leases that end after %(now)s has room when the first of them ends
# (or, sooner, when one is recorded: a NOTIFY on ROOM_CHANNEL says so), and a queue with a rate has a token
# when its bucket refills to one (_BUCKET_REFILLED_AT). So a backlog in queues that are all full does not make
# the dispatcher claim, and find nothing, at every turn.
NEXT_DUE_SQL = f"""
WITH next AS MATERIALIZED (SELECT LEAST(
    (SELECT min(next_attempt_at) FROM jobs_job WHERE state IN ('scheduled', 'running') AND queue_id IS NULL),
    (
        SELECT min(GREATEST(
            CASE WHEN held.running >= queue.parallelism THEN held.first_end ELSE first.at END,
            {_BUCKET_REFILLED_AT}
        ))
        FROM jobs_jobqueue AS queue
        CROSS JOIN LATERAL (
            SELECT job.next_attempt_at AS at FROM jobs_job AS job
            WHERE job.queue_id = queue.id AND job.state IN ('scheduled', 'running')
            ORDER BY job.next_attempt_at
            LIMIT 1
        ) AS first
        CROSS JOIN LATERAL (
            SELECT count(*) AS running, min(ends.at) AS first_end FROM (
                SELECT job.next_attempt_at AS at FROM jobs_job AS job
                WHERE job.queue_id = queue.id AND job.state = 'running' AND job.next_attempt_at > %(now)s
                ORDER BY job.next_attempt_at
                LIMIT COALESCE(queue.parallelism, 0)
            ) AS ends
        ) AS held
        WHERE NOT queue.paused
    ),
    (SELECT min(next_run_at) FROM jobs_job WHERE kind = 'recurring' AND state = 'scheduled' AND next_run_at IS NOT NULL)
) AS due)
SELECT CASE WHEN due < %(earliest)s THEN %(earliest)s WHEN due > %(latest)s THEN %(latest)s ELSE due END FROM next
"""  # noqa: S608 - constants only, the values are parameters


class Claim(NamedTuple):
    """Jobs claimed together under one lease, oldest first: one worker's task."""

    lease: uuid.UUID
    ids: list[uuid.UUID]


class _Claimed(NamedTuple):
    """One job a claim took: its id, attempt count and attempt start as they were, its lease, and, when
    the claim read its jobs, the job as it is sent."""

    id: uuid.UUID
    attempt_count: int
    attempt_started_at: datetime | None
    lease: uuid.UUID
    job: Job | None = None


def _claim_in_one_statement(
    *,
    now: datetime,
    limit: int,
    leases: list[uuid.UUID],
    chunk: int,
    queued: bool = False,
    only: list | None = None,
    read: bool = False,
    locked: bool = False,
) -> list[_Claimed]:
    """PostgreSQL: the due rows (without a queue, or `queued` ones, once their queues are locked: those of
    the queues `only` names, or of any; with `locked`, the caller locked the queues `only` names) claimed by one
    UPDATE, oldest first; with `read`, the same UPDATE answers each job as it is sent (its SENT_FIELDS) and its
    keyring's valid secrets, so that neither needs a query of its own."""
    lease_ends = now + timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    parameters = {"now": now, "limit": limit, "leases": leases, "chunk": chunk, "lease_ends": lease_ends, "only": only}
    if queued and locked:
        parameters["queues"] = only
    elif queued:
        with prepared_cursor() as cursor:
            cursor.execute(QUEUES_LOCK_SQL if only is None else QUEUES_LOCK_ONLY_SQL, parameters)
            parameters["queues"] = [queue_id for (queue_id,) in cursor.fetchall()]
        if not parameters["queues"]:
            return []
    claim = QUEUED_CLAIM_SQL if queued else CLAIM_SQL
    if read:
        with prepared_cursor() as cursor:
            cursor.execute(f"{claim} RETURNING {CLAIMED_JOBS}", parameters)
            rows = sorted(cursor.fetchall(), key=lambda row: row[-1])  # by place in the claim
        sent = len(SENT_FIELDS)
        claimed = []
        for job, row in zip(_sent_jobs([row[:sent] for row in rows]), rows, strict=True):
            job.valid_secrets, attempt_count, attempt_started_at, _ = row[sent:]
            claimed.append(_Claimed(job.pk, attempt_count, attempt_started_at, job.lease, job))
        return claimed
    with prepared_cursor() as cursor:
        cursor.execute(f"{claim} RETURNING {CLAIMED}", parameters)
        rows = sorted(cursor.fetchall(), key=lambda row: row[3])
    return [_Claimed(job_id, number, started, leases[position // chunk]) for job_id, number, started, position in rows]


@cache
def _sent_layout(vendor: str) -> tuple[list[int], list[str], list[tuple[int, list]]]:
    """How `_sent_jobs` makes a job of a row of SENT_FIELDS values, worked out once a process for the database's
    kind: where each value goes in the order `Job.from_db` takes, the fields' names in that order, and the
    converters of the values that need one (a JSON field's text loaded), as a query of the field applies them."""
    sent = [Job._meta.get_field(name) for name in SENT_FIELDS]
    fields = [field for field in Job._meta.concrete_fields if field in sent]
    table = Job._meta.db_table
    converters = [
        (place, connection.ops.get_db_converters(field.get_col(table)) + field.get_db_converters(connection))
        for place, field in enumerate(fields)
    ]
    return (
        [sent.index(field) for field in fields],
        [field.attname for field in fields],
        [(place, found) for place, found in converters if found],
    )


def _sent_jobs(rows: list[tuple]) -> list[Job]:
    """The jobs of rows of their SENT_FIELDS values (in that order), each value converted as a query of its
    field would: what a QuerySet would make of them, without its machinery."""
    places, names, converters = _sent_layout(connection.vendor)
    jobs = []
    for row in rows:
        values = [row[index] for index in places]
        for place, found in converters:
            for convert in found:
                values[place] = convert(values[place], None, connection)
        jobs.append(Job.from_db(connection.alias, names, values))
    return jobs


def _available_tokens(queue: JobQueue, now: datetime) -> float | None:
    """The whole tokens of the queue's bucket at `now` (refilled at its rate up to its burst); None: no rate."""
    if queue.rate_per_second is None:
        return None
    if queue.tokens_at is None:
        return queue.burst
    elapsed = max(0.0, (now - queue.tokens_at).total_seconds())
    return min(queue.burst, queue.tokens + queue.rate_per_second * elapsed)


def _bucket_refilled_at(queue: JobQueue) -> datetime | None:
    """When the queue's bucket next holds a whole token, as _BUCKET_REFILLED_AT says; None: no rate, or full."""
    if queue.rate_per_second is None or queue.tokens_at is None:
        return None
    refilled = math.ceil(min(3e9, (1 - queue.tokens) / queue.rate_per_second) * 1e6)
    return queue.tokens_at + timedelta(microseconds=refilled)


def _queued_due_with_queries(*, now: datetime, limit: int, only: list | None = None) -> list[tuple]:
    """Any database: each open queue's due jobs (of the queues `only` names, or of any) up to its room, the
    oldest `limit` of them, taking their tokens; (id, attempt count, attempt started), queue by queue, each
    queue's oldest first (as QUEUED_CLAIM_SQL places them)."""
    due = Job.objects.filter(state__in=ACTIVE_STATES, next_attempt_at__lte=now)
    open_queues = due.filter(queue__isnull=False, queue__paused=False).values_list("queue", flat=True).distinct()
    if only is not None:
        open_queues = open_queues.filter(queue__in=only)
    rows, tokens_of = [], {}
    for queue in JobQueue.objects.select_for_update(skip_locked=True).filter(pk__in=list(open_queues)):
        tokens = _available_tokens(queue, now)
        room = limit if tokens is None else math.floor(tokens + 1e-9)
        if queue.parallelism is not None:
            running = Job.objects.filter(queue=queue, state=JobState.RUNNING, next_attempt_at__gt=now).count()
            room = min(room, queue.parallelism - running)
        if room <= 0:
            continue
        tokens_of[queue.pk] = tokens
        rows += [
            (queue.pk, *row)
            for row in due.select_for_update(skip_locked=True)
            .filter(queue=queue)
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", "id", "attempt_count", "attempt_started_at")[: min(room, limit)]
        ]
    taken = sorted(sorted(rows, key=lambda row: row[1:3])[:limit])
    for queue_id, used in Counter(row[0] for row in taken).items():
        if tokens_of[queue_id] is not None:
            JobQueue.objects.filter(pk=queue_id).update(tokens=tokens_of[queue_id] - used, tokens_at=now)
    return [row[2:] for row in taken]


def _claim_with_queries(
    *,
    now: datetime,
    limit: int,
    leases: list[uuid.UUID],
    chunk: int,
    queued: bool = False,
    only: list | None = None,
    read: bool = False,
    locked: bool = False,
) -> list[_Claimed]:
    """Any database: the same claim as a SELECT ... FOR UPDATE SKIP LOCKED and an UPDATE per chunk (and,
    with `read`, a SELECT of the jobs claimed and one of their keyrings' valid secrets). The queues are locked
    here, `locked` or not (a transaction may lock its own rows again)."""
    if queued:
        rows = _queued_due_with_queries(now=now, limit=limit, only=only)
    else:
        rows = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(state__in=ACTIVE_STATES, next_attempt_at__lte=now, queue__isnull=True)
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
    jobs = {}
    if read:
        jobs = Job.objects.only(*SENT_FIELDS).in_bulk([job_id for job_id, _, _ in rows])
        valid_secrets_read(list(jobs.values()), now=now)
    return [_Claimed(*row, leases[index // chunk], jobs.get(row[0])) for index, row in enumerate(rows)]


def _claim(**parameters) -> list[_Claimed]:
    claim = _claim_in_one_statement if connection.vendor == "postgresql" else _claim_with_queries
    return claim(**parameters)


def _leases(jobs: int) -> list[uuid.UUID]:
    """A new lease for each chunk of JOBS_DELIVERY_CHUNK of `jobs` jobs."""
    return [uuid.uuid4() for _ in range(math.ceil(jobs / settings.JOBS_DELIVERY_CHUNK))]


def _lost_recorded(rows: list[_Claimed]) -> None:
    """A job claimed again because its lease expired had its attempt lost: it is recorded so. In the
    claim's transaction."""
    lost = [row for row in rows if row.attempt_started_at is not None]
    Attempt.objects.bulk_create(
        Attempt(
            job_id=row.id,
            number=row.attempt_count,
            started_at=row.attempt_started_at,
            outcome=AttemptOutcome.LOST,
            error=LOST_ATTEMPT_ERROR,
        )
        for row in lost
    )
    if lost:
        transaction.on_commit(partial(metrics.count, "jobs_delivered", len(lost), AttemptOutcome.LOST, "unknown"))


def _claims(rows: list[_Claimed]) -> list[Claim]:
    """The claimed rows by their lease, their lost attempts recorded. In the claim's transaction."""
    _lost_recorded(rows)
    claims: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in rows:
        claims.setdefault(row.lease, []).append(row.id)
    return [Claim(lease, ids) for lease, ids in claims.items()]


def jobs_claim_due(*, now: datetime, limit: int) -> list[Claim]:
    """Claim up to `limit` due jobs, counting their attempt, in chunks of JOBS_DELIVERY_CHUNK jobs, each
    under a new lease of its own: first those of queues with room (as much as each has; the oldest, placed
    queue by queue so that a queue's jobs share a chunk), then those without a queue, oldest first.

    Call it inside a transaction to hold the claimed rows until that commits (it makes no savepoint of
    its own there: a failure fails that transaction).
    """
    chunk = settings.JOBS_DELIVERY_CHUNK
    with transaction.atomic(savepoint=False):
        rows = _claim(now=now, limit=limit, leases=_leases(limit), chunk=chunk, queued=True)
        rest = limit - len(rows)
        if rest > 0:
            rows += _claim(now=now, limit=rest, leases=_leases(rest), chunk=chunk)
        return _claims(rows)


def jobs_claim_next_queued(
    *, now: datetime, queue_ids: list[int], limit: int, locked: list[int] | None = None
) -> list[Job]:
    """Claim up to `limit` due jobs of the queues `queue_ids` names, as many of each as it has room for,
    as `jobs_claim_due` does; the jobs claimed, queue by queue, as they are sent (each under its chunk's
    lease) with their keyrings' valid secrets (`valid_secrets`, for `signing_keys_attach_read`), read by the
    claim itself. A worker recording a queue's jobs takes that queue's next ones so,
    in the same transaction (the room they leave is counted), without waiting for a dispatcher and the
    broker, nor reading them again.

    A queue that another claim holds meanwhile is waited for (QUEUES_LOCK_ONLY_SQL). `locked`: the queues the
    caller's transaction locked already, in an earlier statement (the record of their jobs does, in the same
    statement, RECORD_SQL); only those are claimed from, and they are not locked again. Inside the record's
    transaction it makes no savepoint of its own (two round trips less a record).
    """
    chunk, only = settings.JOBS_DELIVERY_CHUNK, sorted(set(queue_ids if locked is None else locked))
    if not only:
        return []
    with transaction.atomic(savepoint=False):
        rows = _claim(
            now=now,
            limit=limit,
            leases=_leases(limit),
            chunk=chunk,
            queued=True,
            only=only,
            read=True,
            locked=locked is not None,
        )
        _lost_recorded(rows)
    return [row.job for row in rows]


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


def jobs_release_held(jobs: list[Job], *, due_at: datetime | None = None) -> int:
    """`jobs_release` for jobs as they were claimed, each under its own lease (`job.lease`); how many."""
    by_lease: dict[uuid.UUID, list[uuid.UUID]] = {}
    for job in jobs:
        by_lease.setdefault(job.lease, []).append(job.pk)
    return sum(jobs_release(lease=lease, ids=ids, due_at=due_at) for lease, ids in by_lease.items())


def _enqueue(claims: list[Claim]) -> None:
    """Queue each claim for a worker; when the broker cannot be reached, the claims not queued
    are released (not left to wait for their leases) and the error goes to the dispatcher."""
    from ..tasks import deliver_jobs

    for index, claim in enumerate(claims):
        try:
            deliver_jobs.delay([str(job_id) for job_id in claim.ids], str(claim.lease))
        except BrokerUnreachable:
            for unsent in claims[index:]:
                jobs_release(lease=unsent.lease, ids=unsent.ids)
            raise


def jobs_next_due(now: datetime | None = None) -> datetime | None:
    """When the dispatchers next have work, seen at `now` (the jobs' clock by default): the next scheduled or
    running job is due (a running one when its lease ends) or the next recurring job's run time comes; None
    when neither is known.

    A queue's jobs count from when it has room for one: not while it is paused, not before the first of its
    `parallelism` leases ends while it is full, not before its bucket holds a token. Each queue's next is found
    by its own index. On PostgreSQL, one statement (NEXT_DUE_SQL), read at each dispatcher turn.
    """
    now = now or job_clock.now()
    if connection.vendor == "postgresql":
        with prepared_cursor() as cursor:
            cursor.execute(NEXT_DUE_SQL, {"now": now, "earliest": values.EARLIEST, "latest": values.LATEST})
            return cursor.fetchone()[0]
    return min((due for due in (_next_due_with_queries(now), recurring_next_run()) if due is not None), default=None)


def _next_due_with_queries(now: datetime) -> datetime | None:
    """Any database: when the next scheduled or running job is due, each queue's from when it has room, or None."""
    unqueued = Job.objects.filter(state__in=ACTIVE_STATES, queue__isnull=True).aggregate(due=Min("next_attempt_at"))
    queue_jobs = Job.objects.filter(queue=OuterRef("pk"))
    held = queue_jobs.filter(state=JobState.RUNNING, next_attempt_at__gt=now)
    queues = (
        JobQueue.objects.filter(paused=False)
        # Each time is read back clamped already: clamped again, the subquery would run once per mention.
        .annotate(
            next_due=Subquery(
                earliest(queue_jobs.filter(state__in=ACTIVE_STATES), "next_attempt_at"), output_field=DateTimeField()
            ),
            first_end=Subquery(earliest(held, "next_attempt_at"), output_field=DateTimeField()),
            running=Coalesce(Subquery(held.order_by().values("queue").annotate(n=Count("pk")).values("n")), 0),
        )
    )
    times = [unqueued["due"], *(_queue_due(queue) for queue in queues if queue.next_due is not None)]
    return min((due for due in times if due is not None), default=None)


def _queue_due(queue: JobQueue) -> datetime | None:
    """When a queue annotated with its next job's time (next_due), its jobs running under leases that end later
    than now (running) and the first of those leases' ends (first_end) next has a job it has room for."""
    full = queue.parallelism is not None and queue.running >= queue.parallelism
    due = queue.first_end if full else queue.next_due
    refilled = _bucket_refilled_at(queue)
    return due if due is None or refilled is None else max(due, refilled)


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
