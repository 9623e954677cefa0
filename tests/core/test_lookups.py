import asyncio

import pytest

from core.lookups import MISSING, TrustedLookups


def test_concurrent_misses_share_one_lookup():
    calls = []

    async def load(key):
        calls.append(key)
        await asyncio.sleep(0.01)
        return key.upper()

    lookups = TrustedLookups(load, trust=lambda answer: 60)

    async def many():
        return await asyncio.gather(*(lookups.get(key, key) for key in ["a"] * 100 + ["b"] * 50))

    answers = asyncio.run(many())
    assert answers == ["A"] * 100 + ["B"] * 50
    assert sorted(calls) == ["a", "b"]


def test_an_answer_is_trusted_for_as_long_as_trust_says():
    calls = []
    trusted = {"seconds": 60}

    async def load(key):
        calls.append(key)
        return len(calls)

    lookups = TrustedLookups(load, trust=lambda answer: trusted["seconds"])
    assert asyncio.run(lookups.get("k", "k")) == 1
    assert asyncio.run(lookups.get("k", "k")) == 1
    trusted["seconds"] = 0  # its time has passed
    assert asyncio.run(lookups.get("k", "k")) == 2
    lookups.forget()
    trusted["seconds"] = 60
    assert asyncio.run(lookups.get("k", "k")) == 3


def test_a_failed_lookup_reaches_every_waiter_and_is_not_remembered():
    attempts = []

    async def load(key):
        attempts.append(key)
        await asyncio.sleep(0.01)
        if len(attempts) == 1:
            raise ConnectionError("database down")
        return "ok"

    lookups = TrustedLookups(load, trust=lambda answer: 60)

    async def two():
        return await asyncio.gather(lookups.get("k", "k"), lookups.get("k", "k"), return_exceptions=True)

    first, second = asyncio.run(two())
    assert isinstance(first, ConnectionError) and isinstance(second, ConnectionError)
    assert asyncio.run(lookups.get("k", "k")) == "ok"


@pytest.mark.parametrize("size", [3])
def test_it_never_holds_more_than_its_size(size):
    async def load(key):
        return key

    lookups = TrustedLookups(load, trust=lambda answer: 60, max_size=size)

    async def fill():
        for key in range(10):
            await lookups.get(key, key)

    asyncio.run(fill())
    assert len(lookups._answers) <= size


def test_peek_gives_only_an_answer_trusted_now_and_never_looks_up():
    calls = []
    trusted = {"seconds": 60}

    async def load(key):
        calls.append(key)
        return {"key": key}

    lookups = TrustedLookups(load, trust=lambda answer: trusted["seconds"])
    assert lookups.peek("a") is MISSING
    answer = asyncio.run(lookups.get("a", "a"))
    assert lookups.peek("a") is answer
    trusted["seconds"] = 0
    assert lookups.peek("a") is MISSING
    assert calls == ["a"]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def held_lookups(clock: Clock) -> tuple[TrustedLookups, list, dict]:
    """Lookups trusted 60 s by `clock`, answering how many lookups were made; every lookup after the
    first waits until the test sets `release["event"]` (made inside the test's event loop)."""
    calls, release = [], {}

    async def load(key):
        calls.append(key)
        if len(calls) > 1:
            await release["event"].wait()
        return len(calls)

    return TrustedLookups(load, trust=lambda answer: 60, clock=clock), calls, release


def test_an_answer_past_half_its_trust_is_renewed_while_it_still_answers():
    clock = Clock()
    lookups, calls, release = held_lookups(clock)

    async def scenario():
        release["event"] = asyncio.Event()
        assert await lookups.get("k", "k") == 1
        clock.now += 29
        assert await lookups.get("k", "k") == 1  # before half its trust: no lookup
        await asyncio.sleep(0)
        assert calls == ["k"]
        clock.now += 2
        assert await lookups.get("k", "k") == 1  # answered at once, the renewal under way
        assert await lookups.get("k", "k") == 1  # and one renewal at a time
        await asyncio.sleep(0)
        assert calls == ["k", "k"]
        release["event"].set()
        for _ in range(3):
            await asyncio.sleep(0)
        assert await lookups.get("k", "k") == 2

    asyncio.run(scenario())


def test_an_answer_is_never_used_past_its_trust_even_while_renewing():
    clock = Clock()
    lookups, calls, release = held_lookups(clock)

    async def scenario():
        release["event"] = asyncio.Event()
        assert await lookups.get("k", "k") == 1
        clock.now += 45
        assert await lookups.get("k", "k") == 1  # renewal started, not finished
        clock.now += 20  # past its trust
        waiting = asyncio.ensure_future(lookups.get("k", "k"))
        await asyncio.sleep(0)
        assert not waiting.done()  # it waits for the renewal, not the old answer
        release["event"].set()
        assert await waiting == 2
        assert calls == ["k", "k"]

    asyncio.run(scenario())


def test_a_failed_renewal_leaves_the_answer_trusted_to_its_end_then_fails_the_next_lookup():
    clock, calls = Clock(), []

    async def load(key):
        calls.append(key)
        if len(calls) > 1:
            raise ConnectionError("database down")
        return "first"

    lookups = TrustedLookups(load, trust=lambda answer: 60, clock=clock)

    async def scenario():
        assert await lookups.get("k", "k") == "first"
        clock.now += 40
        assert await lookups.get("k", "k") == "first"
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(calls) == 2  # the renewal ran and failed
        clock.now += 19
        assert await lookups.get("k", "k") == "first"
        clock.now += 2
        with pytest.raises(ConnectionError):
            await lookups.get("k", "k")

    asyncio.run(scenario())
