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


def test_a_wait_given_up_is_not_ended_by_its_own_timer_later():
    """A subscriber's wait cancelled (its task was) and a new one begun: the first one's timeout
    must not end the second."""

    async def scenario():
        waiter = Waiter()
        waiting = asyncio.ensure_future(waiter.wait(0.02))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        second = asyncio.ensure_future(waiter.wait(30))
        await asyncio.sleep(0.05)  # past the first wait's timeout
        ended_early = second.done()
        waiter.set()
        return ended_early, await second

    assert run(scenario()) == (False, True)


def test_a_wait_ended_leaves_no_timer_behind():
    async def scenario():
        loop = asyncio.get_running_loop()
        waiter = Waiter()
        loop.call_later(0.01, waiter.set)
        await waiter.wait(30)
        return [timer for timer in loop._scheduled if not timer.cancelled()]

    assert run(scenario()) == []
