"""Fan-out inside a web process: one blocking read of a topic's stream serves
every subscriber of that topic here, however many there are.

A feed keeps the messages it has read in a ring; subscribers take what they need
from it and otherwise wait on a `Waiter` of their own, which the feed sets when it
reads something (one `set()` per subscriber: no task, no Redis call).
"""

import asyncio
import logging
import weakref
from collections import deque

from django.conf import settings

from core.redis import REDIS_ERRORS, get_async_data_redis

from .store import Message, TopicRef, messages_from, topic_state

logger = logging.getLogger(__name__)

EMPTY = Message(page=0, seq=0, binary=False, value=b"")  # no sequence number starts a read

BLOCK_MS = 2000  # one blocking read's wait (at most); a quiet feed checks its page this often
LINGER_SECONDS = 10  # a feed with no subscriber stops after this
# After a read that found messages, wait this long before the next: what is published
# meanwhile reaches each subscriber in one write instead of one write per message.
COALESCE_SECONDS = 0.005


class Waiter:
    """What wakes one subscriber: set by its topic's feed (or by its client leaving), waited for by the
    subscriber alone, with a timeout.

    It does what an `asyncio.Event` waited for under `asyncio.timeout` does for one waiter, holding less
    while it waits (a future and a timer; no queue of waiters, no coroutine and timeout object of its own):
    a web process holds thousands of idle subscribers, and this is a good part of what each one costs.
    """

    __slots__ = ("_future", "_set", "_timer")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future | None = None
        self._timer: asyncio.TimerHandle | None = None

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._end(True)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> asyncio.Future:
        """To await: done when it is set (True) or once `timeout` seconds pass (False), whichever comes first."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._set:
            future.set_result(True)
            return future
        self._end(False)  # an earlier wait given up (cancelled) ends with its timer
        self._future = future
        self._timer = loop.call_later(max(timeout, 0), self._end, False)
        return future

    def _end(self, result: bool) -> None:
        future, timer = self._future, self._timer
        self._future = self._timer = None
        if timer is not None:
            timer.cancel()
        if future is not None and not future.done():
            future.set_result(result)


class TopicFeed:
    def __init__(self, topic: TopicRef):
        self.topic = topic
        self.page: int | None = None
        self.next_seq = 1  # the sequence number after the last one read
        self.ring: deque[Message] = deque(maxlen=settings.TOPICS_FEED_BUFFER)
        self.last_read: list[Message] = [EMPTY]  # what the last read found (the newest of the ring)
        self.waiters: set[Waiter] = set()
        self.ready = asyncio.Event()
        self.error: Exception | None = None
        self.idle_since = asyncio.get_running_loop().time()

    @property
    def subscribers(self) -> int:
        return len(self.waiters)

    def _wake(self) -> None:
        for waiter in self.waiters:
            waiter.set()

    def covers(self, page: int, seq: int) -> bool:
        """Whether this feed alone can say what follows `seq` in `page`."""
        if self.page is None:  # nothing published: only a subscriber waiting for the first message
            return page == 0 and seq == self.next_seq == 1
        if page not in (0, self.page):
            return False
        return seq == self.next_seq or (bool(self.ring) and self.ring[0].seq <= seq < self.next_seq)

    def messages_from(self, seq: int, limit: int) -> list[Message]:
        """Up to `limit` messages from `seq` on (which `covers` says the ring has). The one read
        last is the same list for every subscriber that was up to date: the common case costs no copy."""
        if seq >= self.next_seq:
            return []
        if seq == self.last_read[0].seq and len(self.last_read) <= limit:
            return self.last_read
        behind = self.next_seq - seq  # counted from the ring's newest end, where subscribers are
        return [self.ring[index] for index in range(-behind, min(-behind + limit, 0))]

    async def _restart(self) -> None:
        state = await topic_state(self.topic)
        self.page, self.next_seq = state.page, state.last_seq + 1
        self.ring.clear()
        self.last_read = [EMPTY]

    def _should_stop(self) -> bool:
        loop = asyncio.get_running_loop()
        return self.subscribers == 0 and loop.time() - self.idle_since > LINGER_SECONDS

    async def run(self, registry: dict) -> None:
        try:
            try:
                await self._restart()
            except REDIS_ERRORS as error:
                self.error = error
                return
            finally:
                self.ready.set()
            await self._follow()
        finally:
            if registry.get(self.topic.key) is self:
                del registry[self.topic.key]
            self._wake()

    async def _follow(self) -> None:
        client = get_async_data_redis()
        # A blocking read must end before the socket timeout, or a quiet topic looks like an unreachable Redis.
        block_ms = max(100, min(BLOCK_MS, settings.REDIS_SOCKET_TIMEOUT * 1000 // 2))
        resync = False  # after Redis could not be reached: it may have restarted empty, the topic on a new page
        while not self._should_stop():
            try:
                if resync:
                    await self._restart()
                    resync = False
                    self._wake()
                response = await client.xread({self.topic.key: f"{self.next_seq - 1}-0"}, count=500, block=block_ms)
                if not response:  # quiet: has the topic's numbering restarted (expiry, flush)?
                    state = await topic_state(self.topic)
                    if state.page != self.page:
                        await self._restart()
                        self._wake()
                    continue
                if self.page is None:
                    self.page = (await topic_state(self.topic)).page
            except REDIS_ERRORS as error:
                logger.warning("Topic feed %s: Redis unreachable: %s", self.topic.key, error)
                resync = True
                self._wake()
                await asyncio.sleep(1)
                continue
            messages = messages_from(response[0][1], self.page)
            if messages[0].seq != self.next_seq:  # some were trimmed before this read: not contiguous
                self.ring.clear()
            self.ring.extend(messages)
            self.last_read = messages[-self.ring.maxlen :]
            self.next_seq = messages[-1].seq + 1
            self._wake()
            await asyncio.sleep(COALESCE_SECONDS)


_registries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def feed_join(topic: TopicRef, waiter: Waiter) -> TopicFeed:
    """The running feed of `topic` in this process (started if need be); it sets `waiter` when it reads."""
    loop = asyncio.get_running_loop()
    registry = _registries.setdefault(loop, {})
    feed = registry.get(topic.key)
    if feed is None:
        feed = registry[topic.key] = TopicFeed(topic)
        feed.task = loop.create_task(feed.run(registry))
    feed.waiters.add(waiter)
    await feed.ready.wait()
    if feed.error is not None:
        feed.waiters.discard(waiter)
        raise feed.error
    return feed


def feed_leave(feed: TopicFeed, waiter: Waiter) -> None:
    feed.waiters.discard(waiter)
    if not feed.waiters:
        feed.idle_since = asyncio.get_running_loop().time()
