"""Queues of jobs with flow control: setting them up, removing them, emptying them, and the queue a job names.

A queue belongs to one owner, like their jobs; a job names one of its owner's queues
(or none). The dispatcher applies a queue's parallelism, rate and pause when it claims
(`dispatch.py`); here are the rules for the queues themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import User

from .. import clock
from ..errors import JobParameterError, QueueNotEmpty
from ..models import ACTIVE_STATES, Job, JobQueue, JobState
from .dispatch import queues_room_signal

# A parameter of `queue_set` that was not given: the queue keeps (or, new, defaults) it.
UNCHANGED = object()


def queue_for_job(*, user: User, name: str | None, known: dict[str, JobQueue] | None = None) -> JobQueue | None:
    """The queue of `user` a job names, None for no queue; a name of no queue of theirs is refused.
    `known`: the queues of `user` found so far by name (a batch's jobs), looked in first and added to."""
    if not name:
        return None
    if known is not None and name in known:
        return known[name]
    queue = JobQueue.objects.filter(user=user, name=name).first()
    if known is not None and queue is not None:
        known[name] = queue
    if queue is None:
        raise JobParameterError(
            "queue", f"There is no queue named {name!r}: create it first with PUT /api/v1/job-queues/{name}."
        )
    return queue


def queues_hold(queues: Iterable[JobQueue | None]) -> None:
    """Hold the queues that jobs are being saved in until this transaction ends, refusing one removed
    since it was read (JobParameterError).

    A removal (`queue_delete`, FOR UPDATE) then waits for the jobs' transaction and counts them,
    or, holding the queue first, has removed it by the time this reads it: without the hold, a job
    saved in a queue a removal had just locked failed its foreign key at commit. FOR KEY SHARE: job
    inserts and claims (FOR NO KEY UPDATE) do not wait for it.
    """
    named = {queue.pk: queue.name for queue in queues if queue is not None}
    if not named:
        return
    ids = sorted(named)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM jobs_jobqueue WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE", [ids])
            found = {queue_id for (queue_id,) in cursor.fetchall()}
    else:
        found = set(JobQueue.objects.filter(pk__in=ids).values_list("pk", flat=True))
    for queue_id in ids:
        if queue_id not in found:
            name = named[queue_id]
            raise JobParameterError(
                "queue", f"The queue {name!r} was removed just now: create it again (PUT /api/v1/job-queues/{name})."
            )


@transaction.atomic
def queue_set(
    *, user: User, name: str, parallelism=UNCHANGED, rate_per_second=UNCHANGED, paused=UNCHANGED
) -> tuple[JobQueue, bool]:
    """Create `user`'s queue `name`, or change the settings given of it; (queue, whether it was created).

    A new or changed rate starts with a full bucket (max(1, rate) tokens).
    """
    queue = JobQueue.objects.select_for_update().filter(user=user, name=name).first()
    created = queue is None
    if created:
        if JobQueue.objects.filter(user=user).count() >= settings.JOBS_MAX_QUEUES:
            raise ValidationError(
                {"name": [f"You have {settings.JOBS_MAX_QUEUES} queues, the most there may be (JOBS_MAX_QUEUES)."]}
            )
        queue = JobQueue(user=user, name=name)
    if rate_per_second is not UNCHANGED and (created or rate_per_second != queue.rate_per_second):
        queue.rate_per_second = rate_per_second
        queue.tokens, queue.tokens_at = 0, None  # a full bucket
    if parallelism is not UNCHANGED:
        queue.parallelism = parallelism
    if paused is not UNCHANGED:
        queue.paused = paused
    queue.save()
    queues_room_signal()  # resumed, or given more room: its jobs need not wait for the dispatchers' interval
    return queue, created


@transaction.atomic
def queue_delete(*, queue: JobQueue) -> None:
    """Remove a queue that holds no scheduled or running job; its finished jobs keep no queue."""
    queue = JobQueue.objects.select_for_update().get(pk=queue.pk)
    active = Job.objects.filter(queue=queue, state__in=ACTIVE_STATES).count()
    if active:
        raise QueueNotEmpty(
            f"Queue {queue.name!r} still holds {active} scheduled or running job(s): "
            f"purge it (POST /api/v1/job-queues/{queue.name}/purge) and let its running jobs finish first."
        )
    Job.objects.filter(queue=queue).update(queue=None)
    queue.delete()


def queue_purge(*, queue: JobQueue) -> int:
    """Cancel the queue's scheduled jobs (those in flight are not recalled); how many."""
    return Job.objects.filter(queue=queue, state=JobState.SCHEDULED).update(
        state=JobState.CANCELLED,
        next_attempt_at=None,
        lease=None,
        attempt_started_at=None,
        finished_at=clock.now(),
        updated_at=timezone.now(),
    )
