"""The time jobs are judged by: when a job is due, when an attempt is made, when to retry.

The dispatcher and the delivery read `now()`. It is the wall clock unless a
`ManualClock` is in use (tests advance it instead of sleeping).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Protocol

from django.utils import timezone


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return timezone.now()


class ManualClock:
    """A clock that stands still until it is moved."""

    def __init__(self, start: datetime):
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current

    def set(self, moment: datetime) -> datetime:
        self.current = moment
        return self.current


_clock: Clock = SystemClock()


def now() -> datetime:
    return _clock.now()


@contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """Judge time by `clock` inside the block."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = previous
