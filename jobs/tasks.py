from celery import shared_task
from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings

from . import services

# Seconds a stopping worker waits for its jobs in flight to be recorded (the rest are left to their leases).
DRAIN_SECONDS = min(settings.JOBS_MAX_TIMEOUT, 30) + 5


@shared_task(
    name="jobs.deliver",
    bind=True,
    acks_late=True,  # a redelivered task is harmless: it sends only jobs that still hold its lease
    ignore_result=True,
    time_limit=settings.JOBS_DELIVERY_TIME_LIMIT,
    soft_time_limit=settings.JOBS_DELIVERY_TIME_LIMIT - 5,
)
def deliver_jobs(self, job_ids: list[str], lease: str) -> None:
    """Send the jobs a dispatcher claimed under `lease` (queued by the dispatcher).

    A worker hands them to its jobs in flight and goes on (they are recorded as they
    finish); run eagerly, in the caller, they are sent and recorded before it returns."""
    if self.request.is_eager:
        services.jobs_deliver(job_ids=job_ids, lease=lease)
    else:
        services.deliveries.hand_over(services.jobs_claimed(job_ids=job_ids, lease=lease))


@worker_process_shutdown.connect
@worker_shutdown.connect
def _drain_jobs_in_flight(**_) -> None:
    services.deliveries.drain(DRAIN_SECONDS)
