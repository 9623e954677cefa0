"""Creating jobs, one or a batch at once, each at most once per deduplication id.

A job is made and checked in memory first (`job_new`), so that a batch can say what is
wrong with each of its jobs before anything is written; then `jobs_create` writes them
all in one transaction with one INSERT per thousand jobs, or none of them.

A deduplication id is claimed in the same transaction as the job it stands for (see
`JobDeduplication`): a create whose id another job of the owner's holds unexpired
writes nothing for it and answers with that job. The first create's parameters win;
a later create with the same id and other parameters changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connections, router, transaction

from accounts.models import User

from .. import clock
from ..errors import JobConflict, JobParameterError, JobParameterErrorAt
from ..models import HttpMethod, Job, JobDeduplication, JobKind, JobQueue, JobState
from .queues import queue_for_job, queues_hold
from .recurring import recurring_schedule
from .scheduling import check_destinations

# Rows per INSERT: within PostgreSQL's 65,535 parameters a statement (a job has about 25).
INSERT_BATCH = 1000


class CreatedJob(NamedTuple):
    job: Job
    deduplicated: bool  # an earlier create's job, answered again for its deduplication id


def job_new(
    *,
    user: User,
    uri: str,
    at: datetime | None = None,
    method: str = HttpMethod.GET,
    callback_uri: str = "",
    failure_callback_uri: str = "",
    headers: dict[str, str] | None = None,
    body: str = "",
    timeout: int | None = None,
    retry_schedule: list[int] | None = None,
    cron: str | None = None,
    time_zone: str | None = None,
    paused: bool | None = None,
    deduplication_id: str | None = None,
    queue: str | None = None,
    queues: dict[str, JobQueue] | None = None,
) -> Job:
    """A request to `uri` at `at` (now when not given), or at every run time of `cron` in `time_zone`
    (JOBS_TIME_ZONE when not given), paused from the start if `paused`, in the owner's queue named
    `queue` if given (a recurring job's firings too); checked and not yet saved:
    JobParameterError when a destination is refused or the parameters do not go together.
    `queues`: the owner's queues found so far by name, shared by the jobs of a batch (one query a queue)."""
    check_destinations({"uri": uri, "callback_uri": callback_uri, "failure_callback_uri": failure_callback_uri})
    if cron is None:
        given = next(
            (name for name, value in (("time_zone", time_zone), ("paused", paused)) if value is not None), None
        )
        if given:
            raise JobParameterError(
                given, f"Only a recurring job has {given}: give job[cron] too, e.g. job[cron]=0 9 * * *."
            )
    elif at is not None:
        raise JobParameterError(
            "at", "Give job[at] (one request at that time) or job[cron] (a request at every run time), not both."
        )
    now = clock.now()
    at = at or now
    job = Job(
        id=uuid.uuid4(),
        user=user,
        kind=JobKind.REQUEST,
        uri=uri,
        at=at,
        method=method,
        callback_uri=callback_uri,
        failure_callback_uri=failure_callback_uri,
        headers=headers or {},
        body=body,
        timeout=timeout or settings.JOBS_DEFAULT_TIMEOUT,
        retry_schedule=retry_schedule or None,
        deduplication_id=deduplication_id or "",
        queue=queue_for_job(user=user, name=queue, known=queues),
        state=JobState.SCHEDULED,
        next_attempt_at=at,
    )
    if cron is not None:
        recurring_schedule(job, cron=cron, time_zone=time_zone or settings.JOBS_TIME_ZONE, paused=bool(paused), now=now)
    return job


def job_create(*, user: User, **fields) -> Job:
    """Schedule a request (the parameters of `job_new`); with a deduplication id its owner gave
    another create within JOBS_DEDUPLICATION_SECONDS, that create's job instead."""
    return jobs_create(user=user, jobs=[job_new(user=user, **fields)])[0].job


@transaction.atomic
def jobs_create(*, user: User, jobs: Sequence[Job]) -> list[CreatedJob]:
    """Save `user`'s new `jobs` (from `job_new`) in one transaction, and answer for each, in order,
    the job that stands for it: itself, or the job that holds its deduplication id (an earlier
    create's, or an earlier one of `jobs` with the same id). JobParameterErrorAt, with the
    positions in `jobs` of the recurring jobs that do not fit, when they would take `user` past
    JOBS_MAX_RECURRING_JOBS; nothing is saved then."""
    recurring = any(job.kind == JobKind.RECURRING for job in jobs)
    if recurring:
        _lock_owner(user)
    firsts: dict[str, Job] = {}
    for job in jobs:
        if job.deduplication_id:
            firsts.setdefault(job.deduplication_id, job)
    holders = _deduplication_claim(user=user, jobs=firsts.values(), now=clock.now())
    new = [job for job in jobs if not job.deduplication_id or holders[job.deduplication_id] == job.id]
    if recurring:
        _check_recurring_room(user=user, jobs=jobs, new=new)
    queues_hold(job.queue for job in new if job.queue_id is not None)
    Job.objects.bulk_create(new, batch_size=INSERT_BATCH)
    standing = {job.id: job for job in new}
    earlier = set(holders.values()) - set(standing)
    standing.update(Job.objects.filter(user=user, pk__in=earlier).in_bulk())
    if earlier - set(standing):
        raise _holder_deleted()
    created = []
    for job in jobs:
        holder = holders[job.deduplication_id] if job.deduplication_id else job.id
        created.append(CreatedJob(standing[holder], deduplicated=holder != job.id))
    return created


def _lock_owner(user: User) -> None:
    """Make this transaction the only one of `user`'s creating recurring jobs until it ends.

    FOR NO KEY UPDATE on the owner's row: a concurrent create of recurring jobs waits (so that
    each counts the other's), while inserting a job (a KEY SHARE lock on its owner) does not.
    Every create of recurring jobs takes it before its deduplication ids, so the locks are
    always taken in one order.
    """
    list(User.objects.select_for_update(no_key=True).filter(pk=user.pk).values_list("pk", flat=True))


def _check_recurring_room(*, user: User, jobs: Sequence[Job], new: Sequence[Job]) -> None:
    """JobParameterErrorAt when the recurring jobs among `new` (those of `jobs` that are not
    answered with another job) would give `user` more than JOBS_MAX_RECURRING_JOBS (call it with
    the owner locked, `_lock_owner`): its positions, in `jobs`, the first recurring job past the
    limit and every new recurring job after it.

    A recurring job makes a firing at every run time for as long as it lives, without another
    request: the limit bounds the work one owner makes the dispatcher do, and so how far behind
    one owner can put everyone's run times (a run time fired more than a minute late is skipped).
    Every recurring job counts, paused and cancelled ones too (a resume or retry needs no room);
    deleting one makes room."""
    saved = {job.id for job in new}
    adding = [index for index, job in enumerate(jobs) if job.kind == JobKind.RECURRING and job.id in saved]
    if not adding:
        return
    limit = settings.JOBS_MAX_RECURRING_JOBS
    existing = Job.objects.filter(user=user, kind=JobKind.RECURRING).count()
    if existing + len(adding) > limit:
        raise JobParameterErrorAt(
            "cron",
            f"An owner may have at most {limit} recurring jobs (JOBS_MAX_RECURRING_JOBS): you have {existing}, "
            f"and this would add {len(adding)}. Delete recurring jobs you no longer need first.",
            positions=adding[max(limit - existing, 0) :],
        )


def _deduplication_claim(*, user: User, jobs: Iterable[Job], now: datetime) -> dict[str, uuid.UUID]:
    """Claim each job's deduplication id for it, unless another job of `user`'s holds it unexpired;
    answer, by id, the job that holds it now.

    One `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired` per INSERT_BATCH ids: a new id is
    inserted, an expired one taken over in place, a live one left alone (RETURNING leaves it
    out). A concurrent create of the same id waits on the unique index for this transaction:
    it then finds the id taken (and reads its job), or free again if this one rolled back.
    The ids are claimed in sorted order, whatever order they came in: two batches holding the
    same ids in other orders then wait for each other instead of deadlocking (each holding an id
    the other waits for). The jobs' rows follow in the same transaction (the foreign key is
    checked at commit).
    """
    jobs = sorted(jobs, key=lambda job: job.deduplication_id)
    if not jobs:
        return {}
    alias = router.db_for_write(JobDeduplication)
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = JobDeduplication._meta
    table = quote(fields.db_table)
    user_column, id_column, job_column, expires_column = (
        quote(fields.get_field(name).column) for name in ("user", "deduplication_id", "job", "expires_at")
    )
    job_field, time_field = fields.get_field("job"), fields.get_field("expires_at")
    expires_at = time_field.get_db_prep_value(now + timedelta(seconds=settings.JOBS_DEDUPLICATION_SECONDS), connection)
    holders: dict[str, uuid.UUID] = {}
    for start in range(0, len(jobs), INSERT_BATCH):
        chunk = jobs[start : start + INSERT_BATCH]
        rows = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
        params = []
        for job in chunk:
            params += [user.pk, job.deduplication_id, job_field.get_db_prep_value(job.id, connection), expires_at]
        params.append(time_field.get_db_prep_value(now, connection))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({user_column}, {id_column}, {job_column}, {expires_column}) VALUES {rows} "  # noqa: S608 (names are the model's, values are parameters)
                f"ON CONFLICT ({user_column}, {id_column}) DO UPDATE "
                f"SET {job_column} = EXCLUDED.{job_column}, {expires_column} = EXCLUDED.{expires_column} "
                f"WHERE {table}.{expires_column} <= %s RETURNING {id_column}",
                params,
            )
            claimed = {row[0] for row in cursor.fetchall()}
        holders.update({job.deduplication_id: job.id for job in chunk if job.deduplication_id in claimed})
    taken = [job.deduplication_id for job in jobs if job.deduplication_id not in holders]
    if taken:
        held = JobDeduplication.objects.using(alias).filter(user=user, deduplication_id__in=taken)
        holders.update(dict(held.values_list("deduplication_id", "job_id")))
        if len(holders) < len(jobs):
            raise _holder_deleted()
    return holders


def _holder_deleted() -> JobConflict:
    """The job holding an id was deleted between the claim and the read (deleting it frees the id)."""
    return JobConflict(
        "deduplication_id", "The job this deduplication id stood for was deleted just now; send the create again."
    )
