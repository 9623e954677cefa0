"""Writes and business rules of delayed HTTP jobs."""

from .creation import CreatedJob, job_create, job_new, jobs_create
from .delivery import jobs_claimed, jobs_deliver, next_attempt_time, response_report
from .dispatch import Claim, jobs_claim_due, jobs_dispatch_due, jobs_next_due
from .in_flight import deliveries
from .queues import queue_delete, queue_purge, queue_set
from .recurring import recurring_jobs_fire, recurring_next_run
from .retention import Pruned, jobs_prune, jobs_prune_batch
from .scheduling import (
    JOB_FIELDS,
    check_destinations,
    destination_refusal,
    job_cancel,
    job_delete,
    job_retry,
    job_run_now,
    job_update,
)

__all__ = [
    "JOB_FIELDS",
    "Claim",
    "CreatedJob",
    "Pruned",
    "check_destinations",
    "deliveries",
    "destination_refusal",
    "job_cancel",
    "job_create",
    "job_delete",
    "job_new",
    "job_retry",
    "job_run_now",
    "job_update",
    "jobs_claim_due",
    "jobs_claimed",
    "jobs_create",
    "jobs_deliver",
    "jobs_dispatch_due",
    "jobs_next_due",
    "jobs_prune",
    "jobs_prune_batch",
    "next_attempt_time",
    "queue_delete",
    "queue_purge",
    "queue_set",
    "recurring_jobs_fire",
    "recurring_next_run",
    "response_report",
]
