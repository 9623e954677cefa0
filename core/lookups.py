"""Answers of slow lookups (the database) that a hot path trusts for a while.

A trusted answer is used for its whole trust, never past it. Past half of it, the
first request to use it starts a new lookup in the background and is answered at
once from the one it has; the answers after see the new lookup's once it is in. So a
steadily used answer is renewed before it expires, and no request waits for the
database on its account: were they all to wait (every request of a token, or of a
cache, shares one answer), the process would pause every time it expires.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

MISSING = object()  # what `TrustedLookups.peek` gives when it has no answer to trust now
RENEW_AFTER = 0.5  # the share of an answer's trust past which its use starts a lookup to renew it


class TrustedLookups:
    """Remembers the answers of an async lookup for a while, so a hot path does not
    ask the database on every request; concurrent misses for one key share one lookup.

    `trust(answer)` says for how many seconds an answer may be used; `clock` is the time
    it is counted in (seconds, never going back).
    """

    def __init__(
        self,
        load: Callable[..., Awaitable[Any]],
        trust: Callable[[Any], float],
        max_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._load = load
        self._trust = trust
        self._max_size = max_size
        self._clock = clock
        self._answers: dict[Any, tuple[float, Any]] = {}  # key -> (clock time looked up, answer)
        self._pending: dict[tuple, asyncio.Task] = {}

    async def get(self, key, *args):
        """The answer for `key`; `args` go to the lookup when it has to be made (or renewed)."""
        known = self._answers.get(key)
        if known is not None:
            age, trust = self._clock() - known[0], self._trust(known[1])
            if age < trust:
                if age >= RENEW_AFTER * trust:
                    self._lookup(key, args)  # not awaited: this request has its answer
                return known[1]
        return await asyncio.shield(self._lookup(key, args))  # a caller that gives up does not cancel the others'

    def _lookup(self, key, args: tuple) -> asyncio.Task:
        """The lookup of `key` under way in this event loop, started if none is."""
        loop = asyncio.get_running_loop()
        slot = (loop, key)  # a task belongs to its event loop
        task = self._pending.get(slot)
        if task is None:
            task = self._pending[slot] = loop.create_task(self._fill(slot, key, args))
            task.add_done_callback(_seen)
        return task

    def peek(self, key):
        """The answer for `key` if one is trusted now, without looking it up; MISSING otherwise."""
        known = self._answers.get(key)
        if known is not None and self._clock() - known[0] < self._trust(known[1]):
            return known[1]
        return MISSING

    async def _fill(self, slot: tuple, key, args: tuple):
        try:
            answer = await self._load(*args)
            if len(self._answers) >= self._max_size:
                self._answers.clear()
            self._answers[key] = (self._clock(), answer)
            return answer
        finally:
            self._pending.pop(slot, None)

    def discard(self, key) -> None:
        """Stop trusting the answer for `key`: the next `get` looks it up."""
        self._answers.pop(key, None)

    def forget(self) -> None:
        self._answers.clear()


def _seen(task: asyncio.Task) -> None:
    """A renewal nobody awaited may fail (the database away): the answer it renews stays trusted to
    its end, and the lookup made after that reports the failure to its requests."""
    if not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()
