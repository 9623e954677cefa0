import logging

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings

from subscriptions import metrics  # the service's Prometheus counters (/metrics)

from . import services

logger = logging.getLogger(__name__)

# Seconds a stopping worker waits for its jobs in flight to be recorded (the rest are left to their leases).
DRAIN_SECONDS = min(settings.JOBS_MAX_TIMEOUT, 30) + 5
# Seconds one retention run deletes for (a batch at a time); what is left waits for the next run.
PRUNE_SECONDS = 1200


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


@shared_task(
    name="jobs.prune_finished", ignore_result=True, time_limit=PRUNE_SECONDS + 300, soft_time_limit=PRUNE_SECONDS + 240
)
def prune_finished_jobs() -> None:
    """Delete the finished jobs past their retention (the periodic task "Prune finished jobs"), and count them."""
    pruned = services.jobs_prune(seconds=PRUNE_SECONDS)
    for what, count in pruned.counts.items():
        metrics.record("sbm_jobs_pruned", count, what=what)
    logger.info(
        "Retention: deleted %s in %d batches (longest %.3f s).",
        dict(pruned.counts) or "nothing",
        pruned.batches,
        pruned.longest_batch,
    )


@worker_process_shutdown.connect
@worker_shutdown.connect
def _drain_jobs_in_flight(**_) -> None:
    services.deliveries.drain(DRAIN_SECONDS)
