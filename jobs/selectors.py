import uuid

from django.db.models import Prefetch, QuerySet

from accounts.models import User

from .errors import JobNotFound
from .models import Attempt, Job, JobKind


def jobs_of_user(*, user: User) -> QuerySet[Job]:
    """The jobs `user` scheduled, one-off and recurring, with the firings of the recurring ones (not their
    callbacks), newest first."""
    return Job.objects.filter(user=user, kind__in=(JobKind.REQUEST, JobKind.RECURRING)).order_by("-created_at", "-id")


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
