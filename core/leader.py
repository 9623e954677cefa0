"""A leader lease in the database: which one of several processes plays a role now.

The holder renews the lease every `renew_every` seconds; it lapses `seconds` after the
last renewal by the database's clock, and then another process takes it. A holder
counts its lead as lasting only until `seconds - MARGIN_SECONDS` after the moment it
*sent* its last successful renewal, by its own monotonic clock: that moment is before
the database stamped the renewal, so a process that was paused, or cut from the
database, stops counting itself leader before anyone else can have taken over.

Each change of holder raises the lease's token: what a leader does can carry its
token, and the later leader's is the higher.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from django.db import DatabaseError, InterfaceError, close_old_connections, connection
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, Value, When
from django.db.models.functions import Now

from .models import LeaderLease

logger = logging.getLogger(__name__)

MARGIN_SECONDS = 1.0  # for the two clocks' rates, and the time a renewal's answer takes to come back


def process_name() -> str:
    """This process, as a lease holder: host, pid and a random part (a pid is reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, name: str, *, seconds: float, holder: str | None = None):
        if seconds <= MARGIN_SECONDS:
            raise ValueError(f"A lease must last more than {MARGIN_SECONDS} s.")
        self.name, self.seconds = name, seconds
        self.holder = holder or process_name()
        self.token: int | None = None  # while held
        self._held_until = 0.0  # by time.monotonic()

    def held(self) -> bool:
        """Whether this process leads now (no database call)."""
        return time.monotonic() < self._held_until

    def refresh(self) -> bool:
        """Renew the lease, or take it if it has lapsed; whether this process now holds it.
        A database error counts as not holding it (the error is raised)."""
        sent = time.monotonic()
        LeaderLease.objects.get_or_create(name=self.name)
        mine = Q(holder=self.holder)
        taken = (
            LeaderLease.objects.filter(name=self.name)
            .filter(mine | Q(expires_at__isnull=True) | Q(expires_at__lt=Now()))
            .update(
                token=Case(When(mine, then=F("token")), default=F("token") + 1),
                acquired_at=Case(When(mine, then=F("acquired_at")), default=Now()),
                holder=self.holder,
                expires_at=ExpressionWrapper(Now() + Value(timedelta(seconds=self.seconds)), DateTimeField()),
            )
        )
        if not taken:
            self._lose()
            return False
        token = LeaderLease.objects.filter(name=self.name, holder=self.holder).values_list("token", flat=True).first()
        if token is None:  # taken over between the two statements
            self._lose()
            return False
        if token != self.token:
            logger.info("Leading %s (lease token %d).", self.name, token)
        self.token = token
        self._held_until = sent + self.seconds - MARGIN_SECONDS
        return True

    def release(self) -> None:
        """Give the lease up at once (on a clean stop), so that another takes over without waiting."""
        token = self.token
        self._lose()  # first: from now on this process does not lead, whatever the database says
        if token is not None:
            LeaderLease.objects.filter(name=self.name, holder=self.holder, token=token).update(expires_at=None)

    def _lose(self) -> None:
        if self.token is not None:
            logger.warning("No longer leading %s (lease token %d).", self.name, self.token)
        self.token, self._held_until = None, 0.0


def keep_refreshing(lease: Lease, stop: threading.Event, *, every: float) -> None:
    """Refresh `lease` every `every` seconds until `stop` is set, then release it (a thread's target)."""
    while True:
        try:
            lease.refresh()
        except (DatabaseError, InterfaceError) as error:
            # The lead, if held, runs out by itself at its time (held() says so).
            logger.warning("Lease %s: the database cannot be reached: %s", lease.name, error)
            connection.close()
        if stop.wait(every):
            break
        close_old_connections()
    try:
        lease.release()
    except (DatabaseError, InterfaceError):
        pass
    finally:
        connection.close()
