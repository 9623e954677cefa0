from celery import shared_task
from django.conf import settings

from . import services


@shared_task(
    name="jobs.deliver",
    acks_late=True,  # a redelivered task is harmless: it sends only jobs that still hold its lease
    ignore_result=True,
    time_limit=settings.JOBS_DELIVERY_TIME_LIMIT,
    soft_time_limit=settings.JOBS_DELIVERY_TIME_LIMIT - 5,
)
def deliver_jobs(job_ids: list[str], lease: str) -> None:
    """Send the jobs a dispatcher claimed under `lease` (queued by the dispatcher)."""
    services.jobs_deliver(job_ids=job_ids, lease=lease)
