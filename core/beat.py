"""Celery beat's scheduler: django-celery-beat's, led by one scheduler process at a time
and riding out a database that cannot be reached.

Every scheduler process runs beat, but only the holder of the beat lease
(core/leader.py) sends anything; the others stand by and take over when the lease
lapses, reading the schedules afresh (with the last run times the leader saved).

Each message beat sends carries the scheduled time it is for (its tick) and the
sender's lease token, so that a periodic task runs once per tick (core/ticks.py).

django-celery-beat survives most database errors, but not one while it reads the
schedules, which ends beat's loop and so the scheduler process: a PostgreSQL restart
at the wrong moment would stop every schedule until someone restarted it.
"""

import datetime
import logging
import time

from django.db import DatabaseError, InterfaceError, connection
from django.utils import timezone
from django_celery_beat import schedulers

from .leader import Lease
from .models import BeatTick
from .ticks import ENTRY_HEADER, TICK_HEADER, TOKEN_HEADER, entry_tick

logger = logging.getLogger(__name__)

# Seconds to wait after the database failed before beat tries again.
RETRY_SECONDS = 1.0
# Seconds between a standby's looks at whether it leads now.
STANDBY_SECONDS = 0.5
# How long a tick's claim is kept (a message older than this is not expected), and how often the
# leader drops older ones.
TICKS_KEPT = datetime.timedelta(days=7)
TICKS_PRUNED_EVERY = 3600.0


class DatabaseScheduler(schedulers.DatabaseScheduler):
    def __init__(self, *args, lease: Lease | None = None, **kwargs):
        self.lease = lease  # None: this beat leads alone (`celery beat` run by hand, tests)
        self._leading = lease is None
        self._ticks_pruned = 0.0  # by time.monotonic()
        super().__init__(*args, **kwargs)

    def leads(self) -> bool:
        """Whether this beat may send now; on taking the lead, read the schedules afresh."""
        if self.lease is None:
            return True
        if not self.lease.held():
            if self._leading:
                logger.warning("Beat: standing by (another scheduler leads).")
            self._leading = False
            return False
        if not self._leading:
            # Read the schedules afresh, with the run times the leader before saved, and build
            # the heap from them on this tick (once: a heap left invalidated would be built again
            # on the next tick from entries that have not seen this tick's runs). A database
            # error here is the tick's: this is tried again on the next one.
            self._last_full_sync = datetime.datetime.min
            self.schedule  # noqa: B018 - the property reads them
            self._heap, self._heap_invalidated = None, False
            self._leading = True
            logger.info("Beat: leading (lease token %s).", self.lease.token)
        return True

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if not self.leads():  # the lead was lost since this tick began
            logger.warning("Beat: not sending %s: no longer leading.", entry.name)
            return None
        tick = entry_tick(entry.model, self.app.now())
        headers = {
            **entry.options.get("headers", {}),
            ENTRY_HEADER: entry.name,
            TICK_HEADER: tick.isoformat(),
            TOKEN_HEADER: self.lease_token,
        }
        entry.options = {**entry.options, "headers": headers}
        return super().apply_async(entry, producer, advance, **kwargs)

    @property
    def lease_token(self) -> int:
        return 0 if self.lease is None else self.lease.token or 0

    def prune_ticks(self) -> None:
        if time.monotonic() - self._ticks_pruned > TICKS_PRUNED_EVERY:
            BeatTick.objects.filter(created_at__lt=timezone.now() - TICKS_KEPT).delete()
            self._ticks_pruned = time.monotonic()

    def tick(self, *args, **kwargs) -> float:
        try:
            if not self.leads():
                return STANDBY_SECONDS
            self.prune_ticks()
            return super().tick(*args, **kwargs)
        except (DatabaseError, InterfaceError) as error:
            logger.warning("Beat: the database cannot be reached, trying again in %g s: %s", RETRY_SECONDS, error)
            connection.close()
            # The read of the schedules failed half-way: read them all again on the next tick.
            self._last_full_sync = datetime.datetime.min
            return RETRY_SECONDS
