"""Recurring jobs: a request made at every run time of a cron expression, read in a time zone.

A recurring job (kind `recurring`) is a schedule, never sent itself: it holds the request
to make, its `cron`, `time_zone` and `next_run_at`. When a run time comes, the dispatcher
makes a **firing**: an ordinary job (kind `request`) copying the request, due at the run
time, with `recurring_job_id` naming the schedule. From then on the firing is claimed,
sent, retried and called back exactly as a one-off job, with attempts of its own.

Why firings rather than sending the schedule itself: a run time's attempts, retries,
callbacks and dead-letter entry then need nothing new, and a firing still retrying does
not hold back the next one (a new firing is made at every run time, even while the
previous one is retrying). And the claim (`dispatch.CLAIM_SQL`) does not know recurring
jobs exist: a schedule has no `next_attempt_at`, so ordinary jobs pay for recurring ones
only one query per dispatcher tick, on an index that holds recurring jobs alone.

Run times missed (while paused, or while no dispatcher ran) are not replayed, except the
latest one when it is less than MISSED_RUN_GRACE late: a dispatcher that was briefly away,
or a job resumed just after a run time, still makes that run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from croniter import CroniterError
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from .. import values
from ..models import Job, JobKind, JobState

logger = logging.getLogger(__name__)

# How late the latest missed run time may be and still be fired (strictly less).
MISSED_RUN_GRACE = timedelta(minutes=1)


def recurring_schedule(job: Job, *, cron: str, time_zone: str, paused: bool, now: datetime) -> Job:
    """Make the unsaved `job` a recurring one: `at` is its first run time after `now`, also its
    `next_run_at` unless it is paused."""
    job.kind = JobKind.RECURRING
    job.cron, job.time_zone, job.paused = cron, time_zone, paused
    job.at = values.next_run_time(cron, time_zone, after=now)
    job.next_attempt_at = None
    job.next_run_at = None if paused else job.at
    return job


def _firing(job: Job, run_at: datetime) -> Job:
    """The firing of `job` for the run time `run_at`: a one-off job of the same request, due then."""
    return Job(
        user_id=job.user_id,
        kind=JobKind.REQUEST,
        recurring_job_id=job.pk,
        method=job.method,
        uri=job.uri,
        at=run_at,
        headers=job.headers,
        body=job.body,
        timeout=job.timeout,
        retry_schedule=job.retry_schedule,
        callback_uri=job.callback_uri,
        failure_callback_uri=job.failure_callback_uri,
        keyring=job.keyring,
        queue_id=job.queue_id,
        state=JobState.SCHEDULED,
        next_attempt_at=run_at,
    )


def _catch_up(job: Job, *, now: datetime, since: datetime) -> Job | None:
    """Move `job` on to its first run time after `now`. The firing of its latest run time up to
    `now` when that is from `since` on, not fired yet, and less than MISSED_RUN_GRACE late;
    otherwise None (earlier run times are skipped)."""
    latest = values.last_run_time(job.cron, job.time_zone, until=now)
    job.next_run_at = values.next_run_time(job.cron, job.time_zone, after=now)
    fired = job.last_run_at is not None and latest <= job.last_run_at
    if latest < since or fired or now - latest >= MISSED_RUN_GRACE:
        return None
    job.last_run_at = latest
    return _firing(job, latest)


def recurring_update(
    job: Job, *, now: datetime, cron: str | None = None, time_zone: str | None = None, paused: bool | None = None
) -> Job:
    """Save the locked recurring `job` with its changes (its request's are already set on it).

    A new cron or zone starts afresh: `at` becomes the first run time after `now`. Pausing
    stops firings; resuming (or changing a cancelled one) moves it on to its next run time
    after `now`, firing first the latest run time missed if less than MISSED_RUN_GRACE late.
    Firings already made keep the request they were made with.
    """
    new_times = (cron is not None and cron != job.cron) or (time_zone is not None and time_zone != job.time_zone)
    job.cron = cron or job.cron
    job.time_zone = time_zone or job.time_zone
    if new_times:
        job.at = values.next_run_time(job.cron, job.time_zone, after=now)
    resuming = job.state != JobState.SCHEDULED or (paused is False and job.paused)
    if paused is not None:
        job.paused = paused
    job.state = JobState.SCHEDULED
    job.finished_at = None
    firing = None
    if job.paused:
        job.next_run_at = None
    elif resuming:
        firing = _catch_up(job, now=now, since=job.at)
    elif new_times:
        job.next_run_at = job.at
    job.save()
    if firing is not None:
        firing.save()
    return job


def recurring_fire_now(job: Job, *, now: datetime) -> Job:
    """A firing of `job` due at once, outside its run times (the admin's "retry now")."""
    firing = _firing(job, now)
    firing.save()
    return firing


# Which recurring jobs' run time has come, locked, on PostgreSQL: asked at every dispatcher tick, so
# one statement that the ORM need not build (the index jobs_job_recurring_due holds recurring jobs alone).
DUE_SQL = """
SELECT id FROM jobs_job
WHERE next_run_at <= %(now)s AND kind = 'recurring' AND state = 'scheduled'
ORDER BY next_run_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""


def _lock_due(*, now: datetime, limit: int) -> list:
    """The ids of up to `limit` recurring jobs whose run time has come, locked (skipping those locked)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(DUE_SQL, {"now": now, "limit": limit})
            return [row[0] for row in cursor.fetchall()]
    return list(
        Job.objects.select_for_update(skip_locked=True)
        .filter(kind=JobKind.RECURRING, state=JobState.SCHEDULED, next_run_at__lte=now)
        .order_by("next_run_at")
        .values_list("id", flat=True)[:limit]
    )


def recurring_jobs_fire(*, now: datetime, limit: int) -> int:
    """Make the firings of the recurring jobs whose run time has come, and move each on to its
    next run time; how many firings were made.

    Locked with SKIP LOCKED, so several dispatchers (and a concurrent change) never fire one
    run time twice. A recurring job whose cron or zone cannot be read (a row written around
    the API) is failed, without holding back the others.
    """
    with transaction.atomic():
        ids = _lock_due(now=now, limit=limit)
        if not ids:
            return 0
        due = list(Job.objects.filter(pk__in=ids).order_by("next_run_at"))
        firings = []
        for job in due:
            job.updated_at = timezone.now()
            try:
                firing = _catch_up(job, now=now, since=job.next_run_at)
            except (CroniterError, ValueError, KeyError):
                logger.exception("Recurring job %s has a cron or zone that cannot be read; it is failed", job.pk)
                job.state, job.next_run_at, job.finished_at = JobState.FAILED, None, now
                continue
            if firing is not None:
                firings.append(firing)
        Job.objects.bulk_update(due, ["state", "next_run_at", "last_run_at", "finished_at", "updated_at"])
        Job.objects.bulk_create(firings)
    return len(firings)


def recurring_next_run() -> datetime | None:
    """When the next recurring job's run time comes, or None."""
    return (
        Job.objects.filter(kind=JobKind.RECURRING, state=JobState.SCHEDULED, next_run_at__isnull=False)
        .aggregate(due=Min("next_run_at"))
        .get("due")
    )
