"""The dispatcher: a loop that claims due jobs and queues them for the workers.

It runs in the scheduler process (`run_dispatcher` in a thread) or alone
(`python manage.py dispatchjobs`). Several may run at once: claims never overlap.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

import psycopg
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from kombu.exceptions import OperationalError as BrokerUnreachable

from . import clock as job_clock
from .clock import Clock
from .services import jobs_dispatch_due, jobs_next_due, recurring_jobs_fire
from .services.dispatch import ROOM_CHANNEL

logger = logging.getLogger(__name__)

# Seconds to wait after the database or the task queue failed before trying again.
ERROR_PAUSE = 1.0
# The longest a dispatcher listening for queues with room goes without looking whether it was stopped.
STOP_CHECK_SECONDS = 0.25


class Waiter:
    """Waits between claims: the time given, or on PostgreSQL until a queue may have room again
    (`ROOM_CHANNEL`, notified when a queued job is recorded or a queue changed), whichever comes first.

    A queue's room comes back when one of its jobs is recorded, not at a time known in advance: a
    dispatcher that waited its interval for it would leave the queue's parallelism unused meanwhile.
    Listening takes a database connection of its own; without one, it waits the time given.
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.listener: psycopg.Connection | None = None

    def wait(self, seconds: float) -> None:
        listener = self._listening()
        if listener is None:
            self.stop.wait(seconds)
            return
        until = time.monotonic() + seconds
        try:
            while not self.stop.is_set() and (left := until - time.monotonic()) > 0:
                if list(listener.notifies(timeout=min(left, STOP_CHECK_SECONDS), stop_after=1)):
                    list(listener.notifies(timeout=0))  # those sent meanwhile: the next claim answers them all
                    return
        except psycopg.Error as error:
            logger.warning("Job dispatcher: listening for queues with room failed (%s); waiting instead", error)
            self.close()
            self.stop.wait(seconds)

    def _listening(self) -> psycopg.Connection | None:
        if self.listener is None and connection.vendor == "postgresql":
            try:
                listener = psycopg.connect(**connection.get_connection_params(), autocommit=True)
                listener.execute(f"LISTEN {ROOM_CHANNEL}")
            except psycopg.Error as error:
                logger.warning("Job dispatcher: cannot listen for queues with room (%s); waiting instead", error)
                return None
            self.listener = listener
        return self.listener

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None


def dispatch_once(*, clock: Clock | None = None, limit: int | None = None) -> int:
    """Make the firings of the recurring jobs whose run time has come, then claim and queue the jobs
    due now (those firings among them); how many were claimed."""
    now = (clock or job_clock).now()
    recurring_jobs_fire(now=now, limit=limit or settings.JOBS_DISPATCH_BATCH)
    return jobs_dispatch_due(now=now, limit=limit)


def pause(*, clock: Clock | None = None) -> float:
    """Seconds to wait before the next turn: until the next job is due (or recurring job's run time comes, or a
    full queue's first lease ends), at most JOBS_DISPATCH_INTERVAL_MS.

    A job due at a time already known is claimed when it is due, not up to an interval later;
    a job created meanwhile that is due sooner is noticed within the interval. A job due now
    that the last claim left (JOBS_MAX_IN_FLIGHT reached) waits the interval: the workers have
    that many jobs to send meanwhile, and the dispatcher does not count them again and again.
    """
    now = (clock or job_clock).now()
    return _until(jobs_next_due(now), now)


def _until(due: datetime | None, now: datetime) -> float:
    """Seconds from `now` to `due`, at most JOBS_DISPATCH_INTERVAL_MS; the interval when nothing is known to
    come due, or when what is due was left by a claim (in flight at the limit, held by another dispatcher)."""
    interval = settings.JOBS_DISPATCH_INTERVAL_MS / 1000
    if due is None:
        return interval
    seconds = (due - now).total_seconds()
    return interval if seconds <= 0 else min(seconds, interval)


def turn(*, clock: Clock | None = None, batch: int) -> float:
    """Claim and queue the jobs due now, if any are (`dispatch_once`); the seconds to wait before the next turn.

    A turn that finds nothing due (every queue with due jobs full, say) costs the one reading of the next due
    time. After a full batch the next turn comes at once; otherwise as `pause` says.
    """
    now = (clock or job_clock).now()
    due = jobs_next_due(now)
    if due is None or due > now:
        return _until(due, now)
    claimed = dispatch_once(clock=clock, limit=batch)
    if claimed:
        logger.debug("Job dispatcher: queued %d job(s).", claimed)
    return 0.0 if claimed >= batch else pause(clock=clock)


def run_dispatcher(stop: threading.Event, *, clock: Clock | None = None) -> None:
    """Dispatch due jobs until `stop` is set, a `turn` at a time.

    Between turns it waits until the next job is due, at most JOBS_DISPATCH_INTERVAL_MS, or until a queue may
    have room again (`Waiter`).
    """
    interval = settings.JOBS_DISPATCH_INTERVAL_MS / 1000
    batch = settings.JOBS_DISPATCH_BATCH
    waiter = Waiter(stop)
    logger.info("Job dispatcher started (every %g s, up to %d jobs a claim).", interval, batch)
    try:
        while not stop.is_set():
            try:
                wait = turn(clock=clock, batch=batch)
            except (DatabaseError, BrokerUnreachable) as error:
                what = "database error" if isinstance(error, DatabaseError) else "the task queue cannot be reached"
                logger.warning("Job dispatcher: %s, retrying in %g s: %s", what, ERROR_PAUSE, error)
                close_old_connections()
                connection.close()
                stop.wait(ERROR_PAUSE)
                continue
            if wait:
                waiter.wait(wait)
    finally:
        waiter.close()
        connection.close()
        logger.info("Job dispatcher stopped.")


def start_dispatcher_thread(*, clock: Clock | None = None) -> tuple[threading.Thread, threading.Event]:
    """Run the dispatcher in a daemon thread of this process; set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run_dispatcher, args=(stop,), kwargs={"clock": clock}, name="job-dispatcher")
    thread.daemon = True
    thread.start()
    return thread, stop
