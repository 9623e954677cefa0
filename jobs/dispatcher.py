"""The dispatcher: a loop that claims due jobs and queues them for the workers.

It runs in the scheduler process (`run_dispatcher` in a thread) or alone
(`python manage.py dispatchjobs`). Several may run at once: claims never overlap.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from kombu.exceptions import OperationalError as BrokerUnreachable

from . import clock as job_clock
from .clock import Clock
from .services import jobs_dispatch_due, jobs_next_due, recurring_jobs_fire, recurring_next_run

logger = logging.getLogger(__name__)

# Seconds to wait after the database or the task queue failed before trying again.
ERROR_PAUSE = 1.0


def dispatch_once(*, clock: Clock | None = None, limit: int | None = None) -> int:
    """Make the firings of the recurring jobs whose run time has come, then claim and queue the jobs
    due now (those firings among them); how many were claimed."""
    now = (clock or job_clock).now()
    recurring_jobs_fire(now=now, limit=limit or settings.JOBS_DISPATCH_BATCH)
    return jobs_dispatch_due(now=now, limit=limit)


def pause(*, clock: Clock | None = None) -> float:
    """Seconds to wait before the next claim: until the next job is due (or recurring job's run time comes),
    at most JOBS_DISPATCH_INTERVAL_MS.

    A job due at a time already known is claimed when it is due, not up to an interval later;
    a job created meanwhile that is due sooner is noticed within the interval. A job due now
    that the last claim left (JOBS_MAX_IN_FLIGHT reached) waits the interval: the workers have
    that many jobs to send meanwhile, and the dispatcher does not count them again and again.
    """
    interval = settings.JOBS_DISPATCH_INTERVAL_MS / 1000
    due = min((moment for moment in (jobs_next_due(), recurring_next_run()) if moment is not None), default=None)
    if due is None:
        return interval
    seconds = (due - (clock or job_clock).now()).total_seconds()
    return interval if seconds <= 0 else min(seconds, interval)


def run_dispatcher(stop: threading.Event, *, clock: Clock | None = None) -> None:
    """Dispatch due jobs until `stop` is set.

    After a full batch it goes on at once; otherwise it waits until the next job is due,
    at most JOBS_DISPATCH_INTERVAL_MS (`pause`).
    """
    interval = settings.JOBS_DISPATCH_INTERVAL_MS / 1000
    batch = settings.JOBS_DISPATCH_BATCH
    logger.info("Job dispatcher started (every %g s, up to %d jobs a claim).", interval, batch)
    try:
        while not stop.is_set():
            try:
                claimed = dispatch_once(clock=clock, limit=batch)
                wait = pause(clock=clock) if claimed < batch else 0.0
            except (DatabaseError, BrokerUnreachable) as error:
                what = "database error" if isinstance(error, DatabaseError) else "the task queue cannot be reached"
                logger.warning("Job dispatcher: %s, retrying in %g s: %s", what, ERROR_PAUSE, error)
                close_old_connections()
                connection.close()
                stop.wait(ERROR_PAUSE)
                continue
            if claimed:
                logger.debug("Job dispatcher: queued %d job(s).", claimed)
            if wait:
                stop.wait(wait)
    finally:
        connection.close()
        logger.info("Job dispatcher stopped.")


def start_dispatcher_thread(*, clock: Clock | None = None) -> tuple[threading.Thread, threading.Event]:
    """Run the dispatcher in a daemon thread of this process; set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run_dispatcher, args=(stop,), kwargs={"clock": clock}, name="job-dispatcher")
    thread.daemon = True
    thread.start()
    return thread, stop
