"""The cache data API's rate limits leased ahead: a process counts a busy user's requests against the share of
this second it leased from Redis, and the limits still hold across processes, on the real Redis."""

import asyncio
import contextvars
import socket
import threading
from collections import Counter

import pytest
import redis.asyncio.connection
from asgiref.sync import async_to_sync

from cache_api import asgi
from core import ratelimit
from core.asgi import HTTPError
from core.redis import REDIS_ERRORS, get_async_data_redis

URL = "/cache/news"


class FrozenTime:
    """`time.time()` for the rate limits, held within one second so that a test's requests fall in it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def frozen(monkeypatch):
    clock = FrozenTime(2_000_000_000.25)
    monkeypatch.setattr(ratelimit, "time", clock)
    monkeypatch.setattr(asgi, "allowance", ratelimit.Allowance())
    return clock


def commands_run() -> dict[str, int]:
    """How many times Redis has run each command, since it started."""

    async def stats() -> dict:
        return await get_async_data_redis().info("commandstats")

    return {name.removeprefix("cmdstat_"): entry["calls"] for name, entry in async_to_sync(stats)().items()}


def counted(user_id: int, kind: str = "requests") -> int:
    """What the user's counter in Redis holds for the frozen second."""
    requests_key, bytes_key = ratelimit.counter_keys(user_id)

    async def read() -> bytes | None:
        return await get_async_data_redis().get(requests_key if kind == "requests" else bytes_key)

    return int(async_to_sync(read)() or 0)


ITEM = b"cache-test:item"


def item(op: str, user_id: int, *, value: bytes = b"", key: bytes = ITEM) -> tuple[str, bytes]:
    return async_to_sync(asgi.run_item)(op=op, user_id=user_id, key=key, value=value, ttl=60)


def statuses(
    op: str, user_id: int, count: int, *, value: bytes = b"", processes: list | None = None, until_refused=False
) -> list[int]:
    """The status each of `count` item operations answers, one after the other: 200 (done) or 429. With
    `processes` (allowances), the operations take turns among them, as the processes of a web tier would; with
    `until_refused`, the first 429 ends them. One event loop for them all (a loop each would open a Redis
    connection each). The user's counters of the frozen second are kept after each: Redis expires them 2 s
    after they start by its own clock, which a slow run would pass."""

    async def run() -> list[int]:
        answers = []
        for turn in range(count):
            if processes:
                asgi.allowance = processes[turn % len(processes)]
            try:
                await asgi.run_item(op=op, user_id=user_id, key=ITEM, value=value, ttl=60)
                answers.append(200)
            except HTTPError as error:
                answers.append(error.status)
            await keep_counters(user_id)
            if until_refused and answers[-1] == 429:
                break
        return answers

    return async_to_sync(run)()


async def keep_counters(user_id: int) -> None:
    client = get_async_data_redis()
    for key in ratelimit.counter_keys(user_id):
        await client.persist(key)


def test_a_busy_users_requests_cost_redis_their_item_command_alone(news, cache_client, settings, frozen):
    settings.CACHE_RATE_LIMIT_REQUESTS = 10_000
    client = cache_client()
    assert client.put(URL, params={"key": "k", "ttl_seconds": "60"}, content=b"v").status_code == 204
    before = commands_run()
    answers = [client.get(URL, params={"key": "k"}) for _ in range(60)]
    after = commands_run()

    assert {response.status_code for response in answers} == {200}
    assert {response.content for response in answers} == {b"v"}
    scripts = after.get("evalsha", 0) - before.get("evalsha", 0)
    plain_gets = after.get("get", 0) - before.get("get", 0)
    # Leases: blocks of 2, 4, 8, 16 and 32 requests (the PUT leased 1), and a first block of bytes.
    assert scripts <= 6, scripts
    assert plain_gets >= 54, plain_gets


def test_the_requests_leased_are_counted_in_redis_as_they_are_leased(news, make_token, settings, frozen):
    settings.CACHE_RATE_LIMIT_REQUESTS = 320  # blocks of at most 10
    token, _ = make_token("cache:readwrite")
    user_id = token.user_id
    assert statuses("get", user_id, 1) == [200]
    assert counted(user_id) == 1
    assert statuses("get", user_id, 2) == [200, 200]
    assert counted(user_id) == 3  # the second request leased itself and the third
    assert statuses("get", user_id, 30) == [200] * 30
    assert counted(user_id) == 1 + 2 + 4 + 8 + 10 + 10  # 33 served, 35 leased, in blocks of at most 10


def test_a_users_limit_holds_across_processes_each_leasing_its_share(news, make_token, settings, frozen):
    settings.CACHE_RATE_LIMIT_REQUESTS = 160  # blocks of at most 5
    token, _ = make_token("cache:readwrite")
    processes = [ratelimit.Allowance(), ratelimit.Allowance()]
    answers = statuses("get", token.user_id, 200, processes=processes)

    served = answers.count(200)
    assert set(answers) == {200, 429}
    assert 160 - 2 * 5 <= served <= 160  # no more lost than a block left in each process
    assert counted(token.user_id) == 160


def test_a_burst_of_concurrent_requests_leases_one_block_at_a_time(news, make_token, settings, frozen):
    """Requests that find the share spent while a lease is under way wait for its block: each leasing a block of
    its own, a burst of a busy user's requests would lease many times what it needs and be refused."""
    settings.CACHE_RATE_LIMIT_REQUESTS = 10_000  # blocks of at most 312
    settings.CACHE_RATE_LIMIT_BYTES = 320_000  # blocks of 4 KiB and more, at most 10,000 bytes
    token, _ = make_token("cache:readwrite")
    item("set", token.user_id, value=b"x" * 100)

    async def burst() -> list:
        calls = (asgi.run_item(op="get", user_id=token.user_id, key=ITEM) for _ in range(300))
        return await asyncio.gather(*calls, return_exceptions=True)

    answers = async_to_sync(burst)()
    assert [answer for answer in answers if answer != ("hit", b"x" * 100)] == []
    assert counted(token.user_id) <= 1 + 2 * 300  # blocks of 1, 2, 4, ... 256, and no more
    assert counted(token.user_id, "bytes") <= 100 + 2 * 300 * 100


def test_the_blocks_shrink_as_a_user_nears_its_limit_so_few_are_held_elsewhere_when_one_is_refused(
    news, make_token, settings, frozen
):
    """Eight processes taking turns: when the first of them is refused, the others hold what they leased last.
    Granted at most a quarter of what is left, those blocks are small by then (in blocks of up to 20, 68 were
    held)."""
    settings.CACHE_RATE_LIMIT_REQUESTS = 640  # blocks of at most 20
    token, _ = make_token("cache:readwrite")
    processes = [ratelimit.Allowance() for _ in range(8)]
    served = statuses("get", token.user_id, 2000, processes=processes, until_refused=True).count(200)
    assert counted(token.user_id) == 640
    assert served >= 640 - 32


def test_a_new_second_starts_a_new_share(news, make_token, settings, frozen):
    settings.CACHE_RATE_LIMIT_REQUESTS = 3
    token, _ = make_token("cache:readwrite")
    assert statuses("get", token.user_id, 5) == [200, 200, 200, 429, 429]
    frozen.now += 1
    assert statuses("get", token.user_id, 4) == [200, 200, 200, 429]


def test_the_bytes_a_share_moves_are_leased_and_limited_across_processes(news, make_token, settings, frozen):
    settings.CACHE_RATE_LIMIT_REQUESTS = 0  # no request limit: every request is served from the share
    settings.CACHE_RATE_LIMIT_BYTES = 3200  # blocks of at most 100 bytes, or the size needed
    token, _ = make_token("cache:readwrite")
    processes = [ratelimit.Allowance(), ratelimit.Allowance()]
    answers = statuses("set", token.user_id, 100, processes=processes, value=b"x" * 50)

    moved = answers.count(200) * 50
    assert set(answers) == {200, 429}
    assert 3200 - 2 * 100 <= moved <= 3200
    assert counted(token.user_id, "bytes") <= 3200
    before = commands_run()
    assert statuses("get", token.user_id, 1) == [429]  # a hit's bytes count as well
    assert commands_run().get("evalsha", 0) - before.get("evalsha", 0) == 1  # the lease refused


def test_after_a_refused_lease_the_rest_of_the_second_is_refused_without_asking_redis(
    news, make_token, settings, frozen
):
    settings.CACHE_RATE_LIMIT_REQUESTS = 3
    token, _ = make_token("cache:readwrite")
    assert statuses("get", token.user_id, 4) == [200, 200, 200, 429]
    before = commands_run()
    assert statuses("get", token.user_id, 5) == [429] * 5
    assert commands_run().get("evalsha", 0) == before.get("evalsha", 0)  # the count cannot fall within the second
    frozen.now += 1
    assert statuses("get", token.user_id, 1) == [200]


def test_after_a_refused_byte_lease_a_value_is_not_read_out_of_redis_to_be_refused(news, make_token, settings, frozen):
    settings.CACHE_RATE_LIMIT_REQUESTS = 0
    settings.CACHE_RATE_LIMIT_BYTES = 30_000
    token, _ = make_token("cache:readwrite")
    settings.CACHE_RATE_LIMIT_BYTES = 0
    item("set", token.user_id, value=b"x" * 20_000)
    settings.CACHE_RATE_LIMIT_BYTES = 30_000
    assert statuses("get", token.user_id, 2) == [200, 429]  # the second read its value: the share did not know

    def sent_by_redis() -> int:
        async def stats() -> dict:
            return await get_async_data_redis().info("stats")

        return async_to_sync(stats)()["total_net_output_bytes"]

    before = sent_by_redis()
    assert statuses("get", token.user_id, 3) == [429] * 3  # counted in Redis, refused there
    assert sent_by_redis() - before < 20_000


class SilentRedis:
    """A TCP server on loopback that takes connections and reads, but never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def silent_redis(settings):
    server = SilentRedis()
    settings.REDIS_URL = f"redis://127.0.0.1:{server.port}/0"
    settings.REDIS_SOCKET_TIMEOUT = 0.25
    yield server
    server.close()


# Set in a burst of requests (its tasks inherit it): the connections they open are counted.
BURST = contextvars.ContextVar("burst", default=None)


@pytest.fixture
def burst_connections(monkeypatch) -> Counter:
    """The connections to Redis each burst opened (by its BURST name). Only those: the silent server is also
    reached by whatever else of this process uses REDIS_URL meanwhile (the metrics' flush, a topic's feed)."""
    opened: Counter = Counter()
    connect = redis.asyncio.connection.Connection._connect

    async def counted(self):
        if BURST.get() is not None:
            opened[BURST.get()] += 1
        return await connect(self)

    monkeypatch.setattr(redis.asyncio.connection.Connection, "_connect", counted)
    return opened


def test_requests_waiting_for_a_lease_fail_with_it_when_redis_does_not_answer(
    settings, frozen, silent_redis, burst_connections
):
    """Each asking Redis again in turn, the last of a burst would wait a timeout for each request before it."""
    settings.CACHE_RATE_LIMIT_REQUESTS = 10_000

    async def burst(name: str, user_id: int, size: int) -> list:
        BURST.set(name)
        calls = (asgi.run_item(op="get", user_id=user_id, key=ITEM) for _ in range(size))
        return await asyncio.gather(*calls, return_exceptions=True)

    alone = async_to_sync(burst)("alone", 8, 1)
    answers = async_to_sync(burst)("five", 7, 5)
    assert all(isinstance(answer, REDIS_ERRORS) for answer in alone + answers), answers
    one_lease = burst_connections["alone"]  # what one lease tries (the client tries a timed-out command again)
    assert one_lease > 0
    assert burst_connections["five"] < 2 * one_lease  # each in turn: 5 times one lease's


def test_a_request_that_stops_waiting_for_a_lease_leaves_it_to_the_others(settings, frozen, silent_redis):
    """A waiter cancelled (its client gone, a shutdown) must not cancel the lease the others wait for."""
    settings.CACHE_RATE_LIMIT_REQUESTS = 10_000

    async def burst() -> list:
        tasks = [asyncio.ensure_future(asgi.run_item(op="get", user_id=7, key=ITEM)) for _ in range(4)]
        await asyncio.sleep(0.2)  # the first is leasing, the others wait for it
        tasks[2].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = async_to_sync(burst)()
    assert isinstance(answers[2], asyncio.CancelledError)
    others = answers[:2] + answers[3:]
    assert all(isinstance(answer, REDIS_ERRORS) for answer in others), others
