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
