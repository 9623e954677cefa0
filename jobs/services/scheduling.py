"""Scheduling, changing, cancelling and retrying jobs: the rules the API and admin share."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import transaction

from accounts.models import User
from core.addresses import refusal_for_url

from .. import clock
from ..errors import JobConflict, JobParameterError
from ..models import HttpMethod, Job, JobKind, JobState
from .queues import queue_for_job

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
    "queue",
)


def destination_refusal(uri: str) -> str | None:
    """Why `uri` is refused before anything is sent (a literal address that may not be reached)."""
    reason = refusal_for_url(uri)
    if reason is None:
        return None
    return (
        f"Refused: {reason}, which jobs may not reach. Use a public address "
        "(the operator can exempt networks with OUTBOUND_ALLOWED_NETWORKS)."
    )


def _check_destinations(fields: dict) -> None:
    for name in ("uri", "callback_uri", "failure_callback_uri"):
        if fields.get(name):
            reason = destination_refusal(fields[name])
            if reason:
                raise JobParameterError(name, reason)


def job_create(
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
    queue: str | None = None,
) -> Job:
    """Schedule a request to `uri` at `at` (now when not given), in the owner's queue named `queue` if given."""
    fields = {"uri": uri, "callback_uri": callback_uri, "failure_callback_uri": failure_callback_uri}
    _check_destinations(fields)
    job_queue = queue_for_job(user=user, name=queue)
    at = at or clock.now()
    return Job.objects.create(
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
        queue=job_queue,
        state=JobState.SCHEDULED,
        next_attempt_at=at,
    )


@transaction.atomic
def job_update(*, job: Job, **changes) -> Job:
    """Change a job's parameters (those given) and schedule it afresh at its `at`.

    A job that is waiting or failed is never sent in its old form: the claim a
    worker may hold is dropped. A request already on the wire is not recalled.
    Its queue changes only while it is not running (a running job counts against its queue until recorded).
    """
    unknown = set(changes) - set(JOB_FIELDS)
    if unknown:
        raise TypeError(f"job_update() got unknown fields {sorted(unknown)}")
    _check_destinations(changes)
    job = Job.objects.select_for_update().get(pk=job.pk)
    if changes.get("at") is None:
        changes.pop("at", None)
    if "timeout" in changes and changes["timeout"] is None:
        changes["timeout"] = settings.JOBS_DEFAULT_TIMEOUT
    if "retry_schedule" in changes:
        changes["retry_schedule"] = changes["retry_schedule"] or None
    if "queue" in changes:
        queue = queue_for_job(user=job.user, name=changes["queue"])
        if job.state == JobState.RUNNING and queue != job.queue:
            raise JobConflict("queue", "The job is running; its queue can be changed once its attempt is recorded.")
        changes["queue"] = queue
    for name, value in changes.items():
        setattr(job, name, value)
    return _reschedule(job, job.at)


def job_delete(*, job: Job) -> None:
    """Delete a job, its attempts and its callbacks; a worker holding it finds nothing to send."""
    Job.objects.filter(pk=job.pk).delete()


@transaction.atomic
def job_retry(*, job: Job) -> Job:
    """Take a failed or cancelled job off the dead-letter list: try it again now, with a fresh retry schedule."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.state not in (JobState.FAILED, JobState.CANCELLED):
        raise JobConflict("state", f"Only a failed or cancelled job can be retried; this one is {job.state}.")
    return _reschedule(job, clock.now())


@transaction.atomic
def job_run_now(*, job: Job) -> Job:
    """Send a job now, whatever its state, with a fresh retry schedule (the admin's "retry now")."""
    job = Job.objects.select_for_update().get(pk=job.pk)
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
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.state in (JobState.SUCCEEDED, JobState.CANCELLED):
        return job
    job.state = JobState.CANCELLED
    job.next_attempt_at = None
    job.lease = None
    job.attempt_started_at = None
    job.finished_at = clock.now()
    job.save()
    return job
