"""Redis through Sentinel: the cache, topics, the health check and the Celery broker use the
primary the Sentinels name, and a failover costs at most 503s (with a JSON message) while it
lasts: afterwards the same process serves again, nothing restarted.

A primary, a replica and three Sentinels of the module's own (harness/redis_servers.py),
with passwords on both, so that REDIS_URL's and REDIS_SENTINEL_PASSWORD's reach where they
should. REDIS_URL's own host is a port nothing listens on: only its password and database count.
"""

import asyncio
import threading
from collections import Counter

import httpx
import pytest
import redis
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured

from cache_api import services
from cache_api.keys import item_key
from cache_api.tasks import cache_items_purge
from core.redis import get_async_redis
from harness.redis_servers import SentinelGroup
from harness.waiting import HOST, free_port, wait_until
from tests.core.test_settings import read_settings
from tests.topics.conftest import LiveServer
from tests.worker import running_worker, using_broker

pytestmark = pytest.mark.django_db(transaction=True)

MASTER = "sbm-primary"
PASSWORD = "data-secret"
SENTINEL_PASSWORD = "sentinel-secret"
DB = 3
HTTP = httpx.Client(timeout=30)


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    servers = SentinelGroup(
        tmp_path_factory.mktemp("sentinel"), master_name=MASTER, password=PASSWORD, sentinel_password=SENTINEL_PASSWORD
    )
    try:
        yield servers.start()
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def live():
    with LiveServer() as server:
        yield server


@pytest.fixture
def through_sentinel(group, settings):
    settings.REDIS_URL = f"redis://:{PASSWORD}@{HOST}:{free_port()}/{DB}"
    settings.REDIS_SENTINELS = tuple((HOST, port) for port in group.sentinel_ports)
    settings.REDIS_SENTINEL_MASTER = MASTER
    settings.REDIS_SENTINEL_PASSWORD = SENTINEL_PASSWORD
    return group


@pytest.fixture
def news(transactional_db):
    return services.cache_create(name="news")[0]


@pytest.fixture
def raw(news, make_token):
    """A token that may use every cache and topic."""
    return make_token()[1]


def primary_client(group: SentinelGroup) -> redis.Redis:
    return redis.Redis(host=HOST, port=group.primary, password=PASSWORD, db=DB, socket_timeout=5)


class Traffic:
    """A client in a thread: cache PUT then GET of one key and a topic publish, over and over,
    each answer counted as (what, status); 503s without a JSON message are counted apart."""

    def __init__(self, live: LiveServer, raw: str):
        self.live, self.raw = live, raw
        self.answers: Counter = Counter()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def round(self, number: int) -> dict[str, httpx.Response]:
        headers = {"Authorization": self.raw}
        url = f"{self.live.url}/cache/news"
        value = f"v{number}".encode()
        put = HTTP.put(url, params={"key": "k", "ttl_seconds": "60"}, content=value, headers=headers)
        got = HTTP.get(url, params={"key": "k"}, headers=headers)
        published = HTTP.post(
            f"{self.live.url}/topics/news/room", content=value, headers={**headers, "Content-Type": "text/plain"}
        )
        return {"put": put, "get": got, "publish": published}

    def _run(self) -> None:
        number = 0
        while not self.stopping.wait(0.02):
            number += 1
            for what, response in self.round(number).items():
                self.answers[(what, response.status_code)] += 1
                if response.status_code == 503 and "message" not in response.json():
                    self.answers[(what, "503 without a message")] += 1

    def __enter__(self) -> "Traffic":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=60)

    def statuses(self) -> set:
        return set(self.answers)


def served(traffic: Traffic, number: int) -> bool:
    answers = traffic.round(number)
    return (
        answers["put"].status_code == 204
        and answers["get"].content == f"v{number}".encode()
        and answers["publish"].status_code == 204
    )


# --- Serving through the Sentinels -------------------------------------------------------------


def test_the_cache_topics_and_health_check_use_the_primary_the_sentinels_name(through_sentinel, live, news, raw):
    traffic = Traffic(live, raw)
    assert served(traffic, 1)
    poll = HTTP.get(f"{live.url}/topics/news/room", params={"token": raw, "sequence_number": 1})
    assert [item["item"]["value"]["text"] for item in poll.json()["items"]] == ["v1"]
    assert HTTP.get(f"{live.url}/api/health/").json()["result"]["redis"] == "Accessible"
    assert primary_client(through_sentinel).get(item_key(news.pk, b"k")) == b"v1"


def test_sentinels_that_cannot_be_reached_are_a_503_with_a_message(through_sentinel, live, raw, settings):
    settings.REDIS_SENTINELS = ((HOST, free_port()),)
    response = HTTP.put(
        f"{live.url}/cache/news", params={"key": "k", "ttl_seconds": "60"}, content=b"v", headers={"Authorization": raw}
    )
    assert response.status_code == 503
    assert response.json() == {"message": "The cache is unavailable: Redis cannot be reached. Try again shortly."}


def test_the_asyncio_pool_through_sentinel_waits_for_a_free_connection(through_sentinel, settings):
    settings.REDIS_MAX_CONNECTIONS = 1

    async def at_once() -> list:
        client = get_async_redis()
        return await asyncio.gather(*(client.incr("sentinel-test:count") for _ in range(5)))

    assert len(set(async_to_sync(at_once)())) == 5  # a pool that does not wait refuses the second: too many connections


# --- Failover ----------------------------------------------------------------------------------

DURING = {("put", 204), ("put", 503), ("get", 200), ("get", 404), ("get", 503), ("publish", 204), ("publish", 503)}


def test_a_failover_is_at_most_503s_while_it_lasts_then_the_new_primary_serves(through_sentinel, live, raw):
    old = through_sentinel.primary
    with Traffic(live, raw) as traffic:
        wait_until(lambda: traffic.answers[("put", 204)] >= 3, what="traffic through the old primary", timeout=30)
        new = through_sentinel.fail_over()
    # A write the old primary took in its last moments may be lost with it: a GET may miss it then.
    assert traffic.statuses() <= DURING, traffic.answers
    assert new != old
    for number in range(20):
        assert served(traffic, number)
    assert HTTP.get(f"{live.url}/api/health/").status_code == 200


def test_the_celery_broker_follows_the_sentinels(monkeypatch, group):
    sentinels = ",".join(f"{HOST}:{port}" for port in group.sentinel_ports)
    derived = read_settings(
        monkeypatch,
        REDIS_URL=f"redis://:{PASSWORD}@{HOST}:6379/{DB}",
        REDIS_SENTINELS=sentinels,
        REDIS_SENTINEL_MASTER=MASTER,
        REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD,
        REDIS_SOCKET_TIMEOUT="2",
    )
    assert derived["CELERY_BROKER_URL"] == ";".join(
        f"sentinel://:{PASSWORD}@{HOST}:{port}/{DB}" for port in group.sentinel_ports
    )
    assert derived["CELERY_BROKER_TRANSPORT_OPTIONS"] == {
        "master_name": MASTER,
        "sentinel_kwargs": {"password": SENTINEL_PASSWORD, "socket_timeout": 2, "socket_connect_timeout": 2},
    }


def test_an_explicit_broker_url_is_kept_with_sentinels(monkeypatch):
    derived = read_settings(
        monkeypatch,
        REDIS_SENTINELS=f"{HOST}:26379",
        REDIS_SENTINEL_MASTER=MASTER,
        CELERY_BROKER_URL="amqp://guest@rabbit:5672//",
    )
    assert derived["CELERY_BROKER_URL"] == "amqp://guest@rabbit:5672//"
    assert derived["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"confirm_publish": True}  # RabbitMQ's, no master name


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"REDIS_SENTINELS": f"{HOST}:26379"}, "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together"),
        ({"REDIS_SENTINEL_MASTER": MASTER}, "REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together"),
        ({"REDIS_SENTINELS": "sentinel-1", "REDIS_SENTINEL_MASTER": MASTER}, "'sentinel-1' is not an address"),
    ],
)
def test_sentinel_settings_that_do_not_fit_stop_start_up(monkeypatch, environment, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        read_settings(monkeypatch, **environment)


def test_a_task_round_trips_through_the_broker_the_sentinels_name(monkeypatch, through_sentinel, news):
    derived = read_settings(
        monkeypatch,
        REDIS_URL=f"redis://:{PASSWORD}@{HOST}:{free_port()}/{DB}",
        REDIS_SENTINELS=",".join(f"{HOST}:{port}" for port in through_sentinel.sentinel_ports),
        REDIS_SENTINEL_MASTER=MASTER,
        REDIS_SENTINEL_PASSWORD=SENTINEL_PASSWORD,
    )
    primary = primary_client(through_sentinel)
    primary.set(item_key(news.pk, b"doomed"), b"v")
    with using_broker(derived["CELERY_BROKER_URL"], derived["CELERY_BROKER_TRANSPORT_OPTIONS"]), running_worker():
        cache_items_purge.delay(news.pk)
        wait_until(lambda: not primary.exists(item_key(news.pk, b"doomed")), what="the worker to purge", timeout=30)
    assert primary.exists("_kombu.binding.celery")  # the queue lives on the primary the Sentinels name


# Last: it leaves the group without a replica.
def test_a_killed_primary_is_503s_until_the_replica_is_promoted_then_served_again(through_sentinel, live, raw):
    with Traffic(live, raw) as traffic:
        wait_until(lambda: traffic.answers[("put", 204)] >= 3, what="traffic through the primary", timeout=30)
        old = through_sentinel.kill_primary()
        through_sentinel.wait_for_new_primary(old)
    assert traffic.statuses() <= DURING, traffic.answers
    assert traffic.answers[("put", 503)] >= 1  # the outage was seen
    for number in range(20):
        assert served(traffic, number)
    assert HTTP.get(f"{live.url}/api/health/").status_code == 200
