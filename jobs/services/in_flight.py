"""A worker process's jobs in flight: sent on the outbound loop, recorded as they finish.

A worker's delivery task reads its chunk's jobs and hands them over here, then
returns: the task is not held while the requests are made, so a slow or hanging
target holds a few of the outbound engine's slots (its origin's), never the
worker's tasks. Each job's result goes to this process's recorder thread, which
records what has finished together, in one transaction for up to RECORD_BATCH jobs
(whatever their chunks), a few statements in all.

At most JOBS_WORKER_MAX_JOBS jobs are held at once; a task handing over more waits
for room, so a worker takes no more from the queue than it can send.

Jobs in a queue (`JobQueue`) have a round trip to make: the queue's room comes back only
when one of its jobs is recorded. So the recorder, in the transaction that records a
queue's jobs, claims that queue's next due jobs itself (no more than it recorded) and sends
them in their place, without a dispatcher and the broker in between; and it gathers
finished jobs for QUEUED_GATHER_SECONDS only once a queued one is among them. A process that
dies with jobs in flight leaves them running under their leases: a dispatcher claims
them again when the leases expire (at-least-once), as for any lost worker. A worker
that is stopped (warm shutdown) first waits for its jobs in flight to be recorded
(`drain`, connected to Celery's shutdown signals in `jobs.tasks`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection

from core import metrics, outbound
from core.db import LoopConnection

from .. import clock
from ..models import Job, JobState
from ..signing import signing_keys_attach_read
from .delivery import UNREACHABLE, RequestResult, record_results, send
from .dispatch import jobs_release_held

logger = logging.getLogger(__name__)

RECORD_BATCH = 500  # jobs recorded in one transaction at most
RECORD_GATHER_SECONDS = 0.02  # how long the recorder waits for more finished jobs to record together
QUEUED_GATHER_SECONDS = 0.002  # no longer than this after a queued job finished: its queue waits for its room
UNREACHABLE_PAUSE = 1.0  # seconds between tries while the database cannot be reached
UNREACHABLE_GIVE_UP = 60.0  # then the jobs are left to their leases


class InFlight:
    """This process's jobs handed over and not yet recorded."""

    def __init__(self) -> None:
        self._forget_parent()
        os.register_at_fork(after_in_child=self._forget_parent)

    def _forget_parent(self) -> None:
        """A new start (in a forked child: none of the parent's jobs, threads or locks is ours)."""
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._held = 0
        self._draining = 0  # drains under way: meanwhile the recorder takes on no queue's next jobs
        self._finished: queue.SimpleQueue[tuple[Job, RequestResult]] = queue.SimpleQueue()
        self._recorder: threading.Thread | None = None
        self._renewer: threading.Thread | None = None
        self._leases: Counter[str] = Counter()  # lease -> its jobs held
        self._connection = LoopConnection()  # the recorder's
        self._renew_until: dict[str, datetime] = {}  # lease -> when its renewal stops

    def _started(self) -> None:
        """Start the recorder and renewer threads on first use. Called with the lock held."""
        if self._recorder is None:
            recorder = threading.Thread(target=self._record_forever, name="job-recorder", daemon=True)
            recorder.start()  # when this fails, nothing is kept: the next hand-over tries again
            self._recorder = recorder
        if self._renewer is None:
            renewer = threading.Thread(target=self._renew_forever, name="job-lease-renewer", daemon=True)
            renewer.start()
            self._renewer = renewer

    def hand_over(self, jobs: list[Job], *, wait: bool = True) -> None:
        """Send `jobs` and record them as they finish; waits while the process holds JOBS_WORKER_MAX_JOBS
        (unless told not to: the recorder taking the place of jobs it just recorded)."""
        if not jobs:
            return
        limit = settings.JOBS_WORKER_MAX_JOBS
        renew_until = clock.now() + timedelta(seconds=settings.JOBS_DELIVERY_TIME_LIMIT)
        with self._room:
            self._started()
            for job in jobs:  # renewed from now on, while waiting for room too
                self._leases[str(job.lease)] += 1
                self._renew_until[str(job.lease)] = renew_until
            # A chunk larger than the limit is taken once nothing else is held, rather than never.
            if wait:
                self._room.wait_for(lambda: self._held == 0 or self._held + len(jobs) <= limit)
            self._held += len(jobs)
        try:
            outbound.submit(self._send_each(jobs))
        except BaseException:
            self._let_go(jobs)  # not handed over after all: their leases bring them back
            raise

    async def _send_each(self, jobs: list[Job]) -> None:
        await asyncio.gather(*(self._send(job) for job in jobs))

    async def _send(self, job: Job) -> None:
        result = await send(job)  # never raises
        self._finished.put((job, result))

    def _let_go(self, jobs: list[Job]) -> None:
        """`jobs` are no longer held: recorded, or left to their leases."""
        with self._room:
            self._held -= len(jobs)
            for job in jobs:
                lease = str(job.lease)
                self._leases[lease] -= 1
                if self._leases[lease] <= 0:
                    del self._leases[lease]
                    self._renew_until.pop(lease, None)
            self._room.notify_all()

    def leases(self) -> list[str]:
        """The leases of the jobs held now whose renewal has not stopped."""
        now = clock.now()
        with self._lock:
            return [lease for lease, until in self._renew_until.items() if until > now]

    def held(self) -> int:
        with self._lock:
            return self._held

    def drain(self, timeout: float) -> bool:
        """Wait until every job handed over has been recorded; whether that happened within `timeout` s.
        Meanwhile the jobs of queues recorded are not followed by their queues' next ones (a dispatcher
        claims those), so a queue's backlog cannot keep a stopping worker."""
        with self._room:
            self._draining += 1
            try:
                return self._room.wait_for(lambda: self._held == 0, timeout=timeout)
            finally:
                self._draining -= 1

    # --- the recorder thread ----------------------------------------------------

    def _gather(self) -> list[tuple[Job, RequestResult]]:
        """The finished jobs: the first one waited for, then whatever finishes within RECORD_GATHER_SECONDS."""
        batch = [self._finished.get()]
        until = time.monotonic() + RECORD_GATHER_SECONDS
        queued = False
        while len(batch) < RECORD_BATCH:
            if not queued and batch[-1][0].queue_id is not None:
                queued = True
                until = min(until, time.monotonic() + QUEUED_GATHER_SECONDS)
            left = until - time.monotonic()
            try:
                batch.append(self._finished.get(timeout=left) if left > 0 else self._finished.get_nowait())
            except queue.Empty:
                break
        return batch

    def _record_forever(self) -> None:
        while True:
            batch = self._gather()
            successors: list[Job] = []
            try:
                successors = self._record(batch, claim_next=not self._draining)
            except Exception:  # the recorder must go on: these jobs are left to their leases
                logger.exception("Recording %d finished jobs failed; they will be claimed again", len(batch))
            finally:
                self._let_go([job for job, _ in batch])
            if successors:
                self._take_on(successors)

    def _take_on(self, jobs: list[Job]) -> None:
        """Send the jobs the recorder claimed (the claim read them), in the place of those it recorded (not
        waiting for room: waiting, the recorder would hold up the very jobs that make it); given back if
        that fails."""
        try:
            signing_keys_attach_read(jobs)  # their secrets were read by the claim
            metrics.count("jobs_claimed", len(jobs))
            self.hand_over(jobs, wait=False)
        except Exception:
            logger.exception("Sending the %d next queued jobs claimed failed; giving them back", len(jobs))
            try:
                jobs_release_held(jobs)
            except Exception:  # left to their leases
                logger.exception("Giving back %d claimed jobs failed; their leases will expire", len(jobs))

    # --- the renewer thread -----------------------------------------------------

    def renew(self) -> int:
        """Push back the lease end of the jobs held under a lease still renewed; how many jobs."""
        leases = self.leases()
        if not leases:
            return 0
        lease_ends = clock.now() + timedelta(seconds=settings.JOBS_LEASE_SECONDS)
        # A job already recorded no longer holds its lease, so it is not touched.
        return Job.objects.filter(lease__any_of=leases, state=JobState.RUNNING).update(next_attempt_at=lease_ends)

    def _renew_forever(self) -> None:
        while True:
            time.sleep(settings.JOBS_LEASE_SECONDS / 3)
            try:
                close_old_connections()
                self.renew()
            except DatabaseError as error:  # tried again at the next turn, while the leases last
                connection.close()
                logger.warning("Renewing the leases of the jobs in flight failed: %s", error)
            except Exception:  # the renewer must go on; meanwhile the leases run as they are
                logger.exception("Renewing the leases of the jobs in flight failed unexpectedly")

    def _record(self, batch: list[tuple[Job, RequestResult]], *, claim_next: bool) -> list[Job]:
        """Record the batch, trying again while the database cannot be reached (for a while); with
        `claim_next`, the next jobs of its queues, claimed.

        The first failure is tried again at once, on a new connection: the one used may have broken
        since it last answered (it is not checked before each batch, `LoopConnection`). A batch tried again
        may have been committed (the connection broke while the commit was answered): its attempts already
        stored are not stored twice."""
        give_up = time.monotonic() + UNREACHABLE_GIVE_UP
        pause, again = 0.0, False
        while True:
            self._connection.refresh()
            try:
                return record_results(batch, claim_next=claim_next, again=again)
            except UNREACHABLE as error:
                connection.close()
                if time.monotonic() > give_up:
                    raise
                logger.warning("Recording finished jobs: the database cannot be reached (%s); trying again", error)
                time.sleep(pause)
                pause, again = UNREACHABLE_PAUSE, True


deliveries = InFlight()
