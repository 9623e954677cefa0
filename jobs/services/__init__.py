"""Writes and business rules of delayed HTTP jobs."""

from .delivery import jobs_claimed, jobs_deliver, next_attempt_time, response_report
from .dispatch import Claim, jobs_claim_due, jobs_dispatch_due, jobs_next_due
from .in_flight import deliveries
from .queues import queue_delete, queue_purge, queue_set
from .scheduling import (
    JOB_FIELDS,
    destination_refusal,
    job_cancel,
    job_create,
    job_delete,
    job_retry,
    job_run_now,
    job_update,
)

__all__ = [
    "JOB_FIELDS",
    "Claim",
    "deliveries",
    "destination_refusal",
    "job_cancel",
    "job_create",
    "job_delete",
    "job_retry",
    "job_run_now",
    "job_update",
    "jobs_claim_due",
    "jobs_claimed",
    "jobs_deliver",
    "jobs_dispatch_due",
    "jobs_next_due",
    "next_attempt_time",
    "queue_delete",
    "queue_purge",
    "queue_set",
    "response_report",
]
