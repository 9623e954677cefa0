"""After Redis restarts, the connections pooled before it are not a request's failure."""

import asyncio

import pytest
import redis
import uvloop

from core.redis import get_async_redis
from harness.waiting import HOST, free_port


# The web processes run on uvloop, which raises its own error writing to a transport it has closed.
@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_command_on_a_connection_redis_closed_by_restarting_is_sent_again(own_redis, run):
    async def scenario() -> list:
        client = get_async_redis()
        # Several connections in the pool, all opened before the restart.
        await asyncio.gather(*(client.set(f"key{n}", n) for n in range(5)))
        own_redis.restart()  # Redis restarts empty: every pooled connection is now closed at its end
        await asyncio.sleep(0.2)  # for the event loop to see them closed, as it would between two requests
        return await asyncio.gather(*(client.get(f"key{n}") for n in range(5)))

    assert run(scenario()) == [None] * 5


def test_a_redis_that_stays_down_still_fails_the_command(own_redis, settings):
    settings.REDIS_URL = f"redis://{HOST}:{free_port()}/0"  # nothing listens there

    async def scenario() -> None:
        await get_async_redis().get("key")

    with pytest.raises(redis.ConnectionError):
        asyncio.run(scenario())


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_command_on_a_connection_whose_transport_the_event_loop_closed_is_sent_again(own_redis, run):
    """After a reset from Redis the event loop closes the connection's transport under it:
    uvloop then refuses the next write with a RuntimeError, which must not reach the request."""

    async def scenario():
        client = get_async_redis()
        await client.set("key", "value")
        connection = await client.connection_pool.get_connection()
        connection._writer.transport.abort()  # as the event loop does on a reset
        await client.connection_pool.release(connection)
        return await client.get("key")

    assert run(scenario()) == b"value"


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_connection_left_without_its_writer_fails_with_a_connection_error_and_the_command_is_sent_again(
    own_redis, run
):
    """A connection closed while it was being opened (during a failover) has no writer when its
    handshake is written: a ConnectionError (a 503, or the command sent again), never an AttributeError."""

    async def scenario():
        client = get_async_redis()
        await client.set("key", "value")
        connection = await client.connection_pool.get_connection()
        writer = connection._writer
        connection._writer = None  # as a disconnect racing the connect's handshake leaves it
        with pytest.raises(redis.ConnectionError):
            await connection._send_packed_command([b"*1\r\n$4\r\nPING\r\n"])
        connection._writer = writer
        await client.connection_pool.release(connection)
        return await client.get("key")

    assert run(scenario()) == b"value"
