"""How the asyncio Redis client writes a command: at once when the transport takes it whole, under the
socket timeout otherwise; either way a Redis that stops answering fails the command within the timeout."""

import asyncio

import pytest
import redis
import uvloop

from core.redis import get_async_redis

RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


@pytest.fixture
def own_redis(own_redis, settings):
    """The shared own Redis, with a socket timeout of 1 s."""
    settings.REDIS_SOCKET_TIMEOUT = 1
    return own_redis


def counting_tasks(loop: asyncio.AbstractEventLoop) -> list:
    """A list that gets one entry for each task the loop makes from now on."""
    made = []

    def factory(loop, coro, **options):
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **options)

    loop.set_task_factory(factory)
    return made


@RUNNERS
def test_a_command_the_transport_takes_whole_is_written_without_a_task_of_its_own(own_redis, run):
    async def scenario() -> tuple[list, int]:
        client = get_async_redis()
        await client.set("key", b"v" * 1000)  # the connection opened, health checked
        made = counting_tasks(asyncio.get_running_loop())
        answers = [await client.get("key") for _ in range(20)]
        return answers, len(made)

    answers, tasks = run(scenario())
    assert answers == [b"v" * 1000] * 20
    assert tasks == 0  # redis-py alone makes one per command (asyncio.wait_for) when a socket timeout is set


@RUNNERS
def test_a_command_larger_than_the_transports_buffer_is_written_whole_under_the_timeout(own_redis, run):
    value = bytes(range(256)) * 8192  # 2 MiB, past the transport's high-water mark

    async def scenario() -> tuple[bytes, int]:
        client = get_async_redis()
        await client.ping()
        made = counting_tasks(asyncio.get_running_loop())
        await client.set("big", value)
        tasks = len(made)
        return await client.get("big"), tasks

    stored, tasks = run(scenario())
    assert stored == value
    assert tasks >= 1  # written under asyncio.wait_for, redis-py's write timeout


@RUNNERS
@pytest.mark.parametrize("size", [100, 64 * 1024 * 1024], ids=["small", "larger than the socket takes"])
def test_a_redis_that_stops_reading_and_answering_fails_the_command_within_the_socket_timeout(own_redis, run, size):
    async def scenario() -> None:
        client = get_async_redis()
        await client.ping()
        own_redis.pause()
        await client.set("key", b"x" * size)

    with pytest.raises(redis.TimeoutError):
        run(scenario())
