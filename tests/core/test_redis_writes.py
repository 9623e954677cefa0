"""How the asyncio Redis client writes a command: at once when the transport takes it whole, under the
socket timeout otherwise; either way a Redis that stops answering fails the command within the timeout."""

import asyncio
import signal

import pytest
import redis
import uvloop

from core.redis import get_async_redis
from harness.processes import Process
from harness.waiting import HOST, free_port, port_open, wait_until

RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


@pytest.fixture
def own_redis(tmp_path, settings):
    """A Redis of the test's own, which the test may stop (SIGSTOP) and which is let go on again after it."""
    port = free_port()
    server = Process(
        "redis",
        ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        log=tmp_path / "redis.log",
    )
    server.start()
    wait_until(lambda: port_open(port), what="Redis to listen", timeout=30)
    settings.REDIS_URL = f"redis://{HOST}:{port}/0"
    settings.REDIS_SOCKET_TIMEOUT = 1
    yield server
    server.signal_group(signal.SIGCONT)
    server.stop()


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
        own_redis.signal_group(signal.SIGSTOP)
        await client.set("key", b"x" * size)

    with pytest.raises(redis.TimeoutError):
        run(scenario())
