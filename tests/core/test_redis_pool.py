"""The asyncio Redis pool of the web processes: a free connection is handed out directly, and
past REDIS_MAX_CONNECTIONS a command waits for one (up to the timeout) instead of failing."""

import asyncio

import pytest
import redis

from core.redis import QuickBlockingConnectionPool, get_async_data_redis, get_async_redis


@pytest.fixture
def one_connection(settings):
    settings.REDIS_MAX_CONNECTIONS = 1
    settings.REDIS_SOCKET_TIMEOUT = 1


def test_the_web_processes_pool_is_the_quick_blocking_one():
    async def scenario():
        return get_async_redis().connection_pool

    assert isinstance(asyncio.run(scenario()), QuickBlockingConnectionPool)


def test_a_command_past_the_pool_size_waits_for_a_released_connection(one_connection):
    async def scenario():
        client = get_async_redis()
        pool = client.connection_pool
        held = await pool.get_connection()
        waiting = asyncio.ensure_future(client.set("pool:key", "value"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not waiting.done()  # no second connection past the size: it waits
        await pool.release(held)
        assert await waiting is True
        assert await client.get("pool:key") == b"value"
        return held, pool

    held, pool = asyncio.run(scenario())
    assert pool._available_connections == [held]  # the one connection, reused and given back
    assert not pool._in_use_connections


def test_a_command_that_waits_past_the_timeout_fails_as_unavailable(one_connection):
    async def scenario():
        client = get_async_redis()
        held = await client.connection_pool.get_connection()
        try:
            await client.get("pool:key")
        finally:
            await client.connection_pool.release(held)

    with pytest.raises(redis.ConnectionError):
        asyncio.run(scenario())


def test_many_concurrent_commands_share_the_pool_and_all_give_their_connection_back(settings):
    settings.REDIS_MAX_CONNECTIONS = 3

    async def scenario():
        client = get_async_redis()
        answers = await asyncio.gather(*(client.incr("pool:counter") for _ in range(50)))
        return client.connection_pool, answers

    pool, answers = asyncio.run(scenario())
    assert sorted(answers) == list(range(1, 51))
    assert len(pool._available_connections) <= 3
    assert not pool._in_use_connections


def test_the_data_faces_client_is_kept_per_loop_until_the_settings_change(settings):
    """Each cache and topics request asks for the data client: the one the loop asked for last is kept, and
    found again once a setting changes (a new Redis, a cluster) or another loop asks."""

    async def client():
        return get_async_data_redis()

    loop, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first = loop.run_until_complete(client())
        assert loop.run_until_complete(client()) is first
        assert other.run_until_complete(client()) is not first
        assert loop.run_until_complete(client()) is first  # its own, again
        settings.REDIS_SOCKET_TIMEOUT += 1
        changed = loop.run_until_complete(client())
        assert changed is not first
        assert changed.connection_pool.connection_kwargs["socket_timeout"] == settings.REDIS_SOCKET_TIMEOUT
    finally:
        loop.close()
        other.close()
