"""A subscriber's Waiter: what the feed sets and the subscriber waits for, with a timeout."""

import asyncio

import pytest

from topics.feed import Waiter


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_wait_ends_when_set_and_says_so():
    async def scenario():
        waiter = Waiter()
        asyncio.get_running_loop().call_later(0.01, waiter.set)
        return await waiter.wait(30), waiter.is_set()

    assert run(scenario()) == (True, True)


def test_a_wait_ends_at_its_timeout_unset():
    async def scenario():
        waiter = Waiter()
        return await waiter.wait(0.01), waiter.is_set()

    assert run(scenario()) == (False, False)


def test_a_set_before_the_wait_is_kept_until_cleared():
    async def scenario():
        waiter = Waiter()
        waiter.set()
        first = await waiter.wait(30)
        waiter.clear()
        return first, await waiter.wait(0)

    assert run(scenario()) == (True, False)


def test_a_cancelled_wait_leaves_no_timer_and_can_be_waited_again():
    async def scenario():
        loop = asyncio.get_running_loop()
        waiter = Waiter()
        waiting = asyncio.ensure_future(waiter.wait(30))
        await asyncio.sleep(0)
        timers = len(loop._scheduled)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        left = sum(not timer.cancelled() for timer in loop._scheduled)
        loop.call_later(0.01, waiter.set)
        return timers, left, await waiter.wait(30)

    assert run(scenario()) == (1, 0, True)
