import uuid
from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import User

from .errors import JobNotFound
from .models import ACTIVE_STATES, Attempt, Job, JobKind, JobQueue, JobState, earliest


def jobs_of_user(*, user: User) -> QuerySet[Job]:
    """The jobs `user` scheduled, one-off and recurring, with the firings of the recurring ones (not their
    callbacks), newest first."""
    return (
        Job.objects.filter(user=user, kind__in=(JobKind.REQUEST, JobKind.RECURRING))
        .select_related("queue")
        .order_by("-created_at", "-id")
    )


def _one(queryset: QuerySet[Job], job_id: str) -> Job:
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        raise JobNotFound("id", f"No job with id {job_id!r}.") from None
    job = queryset.filter(pk=key).first()
    if job is None:
        raise JobNotFound("id", f"No job with id {job_id!r}.")
    return job


def job_of_user(*, user: User, job_id: str) -> Job:
    """One of `user`'s jobs; JobNotFound for any other id, including other users' jobs."""
    return _one(jobs_of_user(user=user), job_id)


def job_with_history(*, user: User, job_id: str) -> Job:
    """One of `user`'s jobs with its attempts and its callbacks (with theirs): four queries."""
    attempts = Attempt.objects.order_by("started_at", "id")
    callbacks = Job.objects.order_by("created_at").prefetch_related(Prefetch("attempts", queryset=attempts))
    queryset = jobs_of_user(user=user).prefetch_related(
        Prefetch("attempts", queryset=attempts), Prefetch("callbacks", queryset=callbacks)
    )
    return _one(queryset, job_id)


def _count_of_queue(jobs: QuerySet[Job]) -> Coalesce:
    counted = jobs.order_by().values("queue").annotate(count=Count("pk")).values("count")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def queues_counted(queues: QuerySet[JobQueue], *, now: datetime) -> QuerySet[JobQueue]:
    """`queues`, each with its depth (jobs scheduled), its jobs in flight (running) and `oldest_due`
    (when its oldest due job was due; None when none is): one query, by the queued jobs' indexes."""
    of_queue = Job.objects.filter(queue=OuterRef("pk"))
    oldest_due = of_queue.filter(state__in=ACTIVE_STATES, next_attempt_at__lte=now)
    return queues.annotate(
        # A recurring job in the queue is a schedule, not a job waiting to be sent: its firings are.
        depth=_count_of_queue(of_queue.filter(state=JobState.SCHEDULED).exclude(kind=JobKind.RECURRING)),
        in_flight=_count_of_queue(of_queue.filter(state=JobState.RUNNING)),
        oldest_due=Subquery(earliest(oldest_due, "next_attempt_at")),
    )


def queues_of_user(*, user: User, now: datetime) -> QuerySet[JobQueue]:
    """`user`'s queues by name, counted as `queues_counted` does."""
    return queues_counted(JobQueue.objects.filter(user=user), now=now).order_by("name")
