"""Changing, cancelling and retrying jobs: the rules the API and admin share (creating them: `creation`).

A job is one-off (`at`) or recurring (`cron`, see `recurring`); it cannot become the other.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import transaction

from core.addresses import refusal_for_url

from .. import clock
from ..errors import JobConflict, JobNotFound, JobParameterError
from ..models import Job, JobKind, JobState
from .queues import queue_for_job, queues_hold
from .recurring import recurring_fire_now, recurring_update

# Parameters a job may be given, in the order the docs list them.
JOB_FIELDS = (
    "uri",
    "at",
    "method",
    "callback_uri",
    "failure_callback_uri",
    "headers",
    "body",
    "timeout",
    "retry_schedule",
    "cron",
    "time_zone",
    "paused",
    "deduplication_id",
    "queue",
)
RECURRING_FIELDS = ("cron", "time_zone", "paused")


def destination_refusal(uri: str) -> str | None:
    """Why `uri` is refused before anything is sent (a literal address that may not be reached)."""
    reason = refusal_for_url(uri)
    if reason is None:
        return None
    return (
        f"Refused: {reason}, which jobs may not reach. Use a public address "
        "(the operator can exempt networks with OUTBOUND_ALLOWED_NETWORKS)."
    )


def check_destinations(fields: dict) -> None:
    """JobParameterError for the first of a job's URIs that is refused (see `destination_refusal`)."""
    for name in ("uri", "callback_uri", "failure_callback_uri"):
        if fields.get(name):
            reason = destination_refusal(fields[name])
            if reason:
                raise JobParameterError(name, reason)


def _locked(job: Job) -> Job:
    """`job` read again and locked for a change; JobNotFound when it was deleted since it was read
    (a delete racing the change: the change waited for its lock, then found no row)."""
    locked = Job.objects.select_for_update().filter(pk=job.pk).first()
    if locked is None:
        raise JobNotFound("id", f"No job with id {str(job.pk)!r}.")
    return locked


@transaction.atomic
def job_update(*, job: Job, **changes) -> Job:
    """Change a job's parameters (those given) and schedule it afresh at its `at`.

    A job that is waiting or failed is never sent in its old form: the claim a
    worker may hold is dropped. A request already on the wire is not recalled.
    A recurring job is changed for its future firings (`recurring_update`).
    Its queue changes only while it is not running (a running job counts against its queue until recorded).
    """
    unknown = set(changes) - set(JOB_FIELDS)
    if unknown:
        raise TypeError(f"job_update() got unknown fields {sorted(unknown)}")
    if "deduplication_id" in changes:
        raise JobParameterError(
            "deduplication_id", "A job's deduplication id is given when it is created; it cannot be changed."
        )
    check_destinations(changes)
    job = _locked(job)
    recurring = {name: changes.pop(name) for name in RECURRING_FIELDS if name in changes}
    if job.kind == JobKind.RECURRING and changes.get("at") is not None:
        raise JobParameterError(
            "at", "A recurring job runs at the times of its cron, not at one time: change job[cron]."
        )
    if job.kind != JobKind.RECURRING and recurring:
        name = next(iter(recurring))
        raise JobParameterError(
            name, f"Only a recurring job has {name}; this one runs once. Create a recurring job with job[cron] instead."
        )
    if changes.get("at") is None:
        changes.pop("at", None)
    if "timeout" in changes and changes["timeout"] is None:
        changes["timeout"] = settings.JOBS_DEFAULT_TIMEOUT
    if "retry_schedule" in changes:
        changes["retry_schedule"] = changes["retry_schedule"] or None
    if "queue" in changes:
        queue = queue_for_job(user=job.user, name=changes["queue"])
        queues_hold([queue])
        if job.state == JobState.RUNNING and queue != job.queue:
            raise JobConflict("queue", "The job is running; its queue can be changed once its attempt is recorded.")
        changes["queue"] = queue
    for name, value in changes.items():
        setattr(job, name, value)
    if job.kind == JobKind.RECURRING:
        return recurring_update(job, now=clock.now(), **recurring)
    return _reschedule(job, job.at)


def job_delete(*, job: Job) -> None:
    """Delete a job, its attempts and its callbacks; a worker holding it finds nothing to send.

    A recurring job makes no more firings; those it made are jobs of their own and run on."""
    Job.objects.filter(pk=job.pk).delete()


@transaction.atomic
def job_retry(*, job: Job) -> Job:
    """Take a failed or cancelled job off the dead-letter list: try it again now, with a fresh retry schedule
    (a recurring job goes on from its next run time)."""
    job = _locked(job)
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise JobConflict("state", f"Only a failed or cancelled job can be retried; this one is {job.state}.")
    if job.kind == JobKind.RECURRING:
        return recurring_update(job, now=clock.now())
    return _reschedule(job, clock.now())


@transaction.atomic
def job_run_now(*, job: Job) -> Job:
    """Send a job now, whatever its state, with a fresh retry schedule (the admin's "retry now");
    for a recurring job, a firing of it now, its run times unchanged."""
    job = _locked(job)
    if job.kind == JobKind.RECURRING:
        recurring_fire_now(job, now=clock.now())
        return job
    return _reschedule(job, clock.now())


def _reschedule(job: Job, moment: datetime) -> Job:
    """Save `job` due at `moment` as a fresh start: no attempts, no claim (a worker holding the
    old one may not record), a new delivery id."""
    job.state = JobState.SCHEDULED
    job.next_attempt_at = moment
    job.first_attempt_at = None
    job.attempt_count = 0
    job.attempt_started_at = None
    job.lease = None
    job.finished_at = None
    job.delivery_id = uuid.uuid4()
    job.save()
    return job


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    """Stop a job: it is not sent again (a request already on the wire is not recalled)."""
    job = _locked(job)
    if job.state in (JobState.SUCCEEDED, JobState.CANCELLED):
        return job
    job.state = JobState.CANCELLED
    job.next_attempt_at = None
    job.next_run_at = None
    job.lease = None
    job.attempt_started_at = None
    job.finished_at = clock.now()
    job.save()
    return job
