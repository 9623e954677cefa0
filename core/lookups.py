import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

MISSING = object()  # what `TrustedLookups.peek` gives when it has no answer to trust now


class TrustedLookups:
    """Remembers the answers of an async lookup for a while, so a hot path does not
    ask the database on every request; concurrent misses for one key share one lookup.

    `trust(answer)` says for how many seconds an answer may be used.
    """

    def __init__(self, load: Callable[..., Awaitable[Any]], trust: Callable[[Any], float], max_size: int = 10_000):
        self._load = load
        self._trust = trust
        self._max_size = max_size
        self._answers: dict[Any, tuple[float, Any]] = {}  # key -> (monotonic time looked up, answer)
        self._pending: dict[tuple, asyncio.Task] = {}

    async def get(self, key, *args):
        """The answer for `key`; `args` go to the lookup when it has to be made."""
        known = self.peek(key)
        if known is not MISSING:
            return known
        loop = asyncio.get_running_loop()
        slot = (loop, key)  # a task belongs to its event loop
        task = self._pending.get(slot)
        if task is None:
            task = self._pending[slot] = loop.create_task(self._fill(slot, key, args))
        return await asyncio.shield(task)  # a caller that gives up does not cancel the others' lookup

    def peek(self, key):
        """The answer for `key` if one is trusted now, without looking it up; MISSING otherwise."""
        known = self._answers.get(key)
        if known is not None and time.monotonic() - known[0] < self._trust(known[1]):
            return known[1]
        return MISSING

    async def _fill(self, slot: tuple, key, args: tuple):
        try:
            answer = await self._load(*args)
            if len(self._answers) >= self._max_size:
                self._answers.clear()
            self._answers[key] = (time.monotonic(), answer)
            return answer
        finally:
            self._pending.pop(slot, None)

    def discard(self, key) -> None:
        """Stop trusting the answer for `key`: the next `get` looks it up."""
        self._answers.pop(key, None)

    def forget(self) -> None:
        self._answers.clear()
