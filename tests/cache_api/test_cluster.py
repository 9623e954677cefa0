"""Cache items and topic streams on a real Redis Cluster of three primaries (DATA_REDIS_CLUSTER_NODES),
through the whole ASGI application; everything else stays on REDIS_URL."""

import json

import httpx
import pytest
from asgiref.sync import async_to_sync
from redis.cluster import key_slot

from cache_api import services
from cache_api.keys import item_key, topic_key, topic_meta_key
from cache_api.models import Cache
from config.asgi import application
from core.ratelimit import counter_keys
from core.redis import get_data_redis, get_redis
from harness.redis_cluster import redis_cluster
from tests.cache_api.conftest import CacheClient
from tests.topics.conftest import EventStream, LiveServer

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/cache/news"
SPREAD = 100  # keys written to see every primary get some: all on two of three has odds (2/3)^100


@pytest.fixture(scope="module")
def running_cluster(tmp_path_factory):
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster(running_cluster, settings):
    """The data faces on the running cluster, emptied."""
    for port in running_cluster.ports:
        running_cluster.node(port).flushall()
    settings.DATA_REDIS_CLUSTER_NODES = running_cluster.nodes
    return running_cluster


@pytest.fixture(scope="module")
def live():
    with LiveServer() as server:
        yield server


@pytest.fixture
def news(transactional_db):
    return services.cache_create(name="news")[0]


@pytest.fixture
def client(make_token):
    return CacheClient(make_token()[1])


def keys_on(cluster, port: int, pattern: bytes) -> list[bytes]:
    return list(cluster.node(port).scan_iter(match=pattern, count=1000))


def send_all(raw: str, requests: list[tuple[str, str, dict, bytes]]) -> list[httpx.Response]:
    """(method, path, params, body) requests sent in a row through the ASGI application in one event
    loop, so one set of Redis clients serves them all."""

    async def send() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=application)
        headers = {"Authorization": raw, "Content-Type": "text/plain"}
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return [
                await http.request(method, path, params=params, content=body, headers=headers)
                for method, path, params, body in requests
            ]

    return async_to_sync(send)()


def publish(client: CacheClient, topic: str, body: bytes = b"hello", cache: str = "news"):
    return client.request("POST", f"/topics/{cache}/{topic}", content=body, headers={"Content-Type": "text/plain"})


# --- Key layout ---------------------------------------------------------------------------


def test_one_topics_keys_share_a_slot_and_so_do_one_users_counters():
    assert key_slot(topic_key(7, "room")) == key_slot(topic_meta_key(7, "room"))
    assert key_slot(topic_key(7, "room")) != key_slot(topic_key(8, "room"))  # the cache id is in the hash tag
    requests, moved = counter_keys(42)
    assert key_slot(requests.encode()) == key_slot(moved.encode())


def test_items_and_topics_of_one_cache_spread_over_every_primary(cluster):
    data = get_data_redis()
    for keys in ([item_key(7, b"k%d" % n) for n in range(SPREAD)], [topic_key(7, f"t{n}") for n in range(SPREAD)]):
        assert len({key_slot(key) for key in keys}) > SPREAD * 0.9
        assert {data.get_node_from_key(key).port for key in keys} == set(cluster.ports)


def test_what_the_faces_write_lands_on_every_primary_and_nothing_on_redis_url(cluster, news, client):
    puts = [("PUT", URL, {"key": f"k{n}", "ttl_seconds": "60"}, b"v") for n in range(SPREAD)]
    publishes = [("POST", f"/topics/news/t{n}", {}, b"hello") for n in range(SPREAD)]
    assert {response.status_code for response in send_all(client.raw_token, [*puts, *publishes])} == {204}
    for port in cluster.ports:
        assert keys_on(cluster, port, b"cache:%d:*" % news.pk), port
        assert keys_on(cluster, port, b"topic:{%d:*" % news.pk), port
    assert not list(get_redis().scan_iter(match=b"cache:*")) + list(get_redis().scan_iter(match=b"topic:*"))


# --- The cache -----------------------------------------------------------------------------


def test_items_are_set_read_and_deleted_on_the_cluster(cluster, news, client):
    assert client.put(URL, params={"key": "k", "ttl_seconds": "300"}, content=b"\x00value\xff").status_code == 204
    got = client.get(URL, params={"key": "k"})
    assert (got.status_code, got.content) == (200, b"\x00value\xff")
    assert get_data_redis().get(item_key(news.pk, b"k")) == b"\x00value\xff"
    assert 295 <= get_data_redis().ttl(item_key(news.pk, b"k")) <= 300
    assert get_redis().get(item_key(news.pk, b"k")) is None

    assert client.delete(URL, params={"key": "k"}).status_code == 204
    missed = client.get(URL, params={"key": "k"})
    assert (missed.status_code, missed.json()) == (404, {"message": "Key Not Found"})
    assert get_data_redis().get(item_key(news.pk, b"k")) is None


def test_deleting_a_cache_removes_its_keys_from_every_primary(cluster, make_token, api, eager_celery):
    _, raw = make_token("cache:readwrite")
    for name in ("news", "kept"):
        assert api(raw).put(f"/api/v1/caches/{name}", {}, format="json").status_code in (200, 201)
    news, kept = Cache.objects.get(name="news"), Cache.objects.get(name="kept")
    data = get_data_redis()
    for number in range(SPREAD):
        data.set(item_key(news.pk, b"k%d" % number), b"v", ex=60)
        data.xadd(topic_key(news.pk, f"t{number}"), {"k": "t", "v": "hello", "t": "0"}, id="1-0")
    data.set(item_key(kept.pk, b"k"), b"stays", ex=60)
    assert all(keys_on(cluster, port, b"cache:%d:*" % news.pk) for port in cluster.ports)

    assert api(raw).delete("/api/v1/caches/news").status_code == 204

    for port in cluster.ports:
        assert keys_on(cluster, port, b"cache:%d:*" % news.pk) == []
        assert keys_on(cluster, port, b"topic:{%d:*" % news.pk) == []
    assert data.get(item_key(kept.pk, b"k")) == b"stays"


# --- Topics --------------------------------------------------------------------------------


def test_published_messages_reach_stream_and_long_poll_subscribers(cluster, news, make_token, live):
    _, raw = make_token()
    stream = EventStream(f"{live.url}/topics/news/room?token={raw}")
    assert stream.wait_for_comment("connected")  # its feed reads the topic on the cluster from here on
    client = CacheClient(raw)
    assert publish(client, "room", b"one").status_code == 204
    assert publish(client, "room", b"two").status_code == 204

    sent = [json.loads(event["data"]) for event in stream.wait_for(2)]
    assert [(message["topic_sequence_number"], message["value"]) for message in sent] == [
        (1, {"text": "one"}),
        (2, {"text": "two"}),
    ]
    polled = client.get("/topics/news/room", params={"sequence_number": "1"}).json()["items"]
    assert [entry["item"]["value"]["text"] for entry in polled] == ["one", "two"]
    assert get_data_redis().xlen(topic_key(news.pk, "room")) == 2
    assert not get_redis().exists(topic_key(news.pk, "room"), topic_meta_key(news.pk, "room"))


# --- Rate limits ---------------------------------------------------------------------------


def first_refused(send, *, attempts: int = 20):
    """The first 429 of up to `attempts` answers in a row: more than the limit always fall in one second."""
    return next((response for response in (send() for _ in range(attempts)) if response.status_code == 429), None)


def test_the_request_limit_holds_for_cache_and_topics_requests(cluster, news, client, settings):
    settings.CACHE_RATE_LIMIT_REQUESTS = 3
    for send in (lambda: client.get(URL, params={"key": "k"}), lambda: publish(client, "room")):
        refused = first_refused(send)
        assert refused is not None
        assert refused.json() == {
            "message": "Too many requests: a user's tokens may make 3 requests per second together "
            "(CACHE_RATE_LIMIT_REQUESTS)."
        }
    assert not list(get_redis().scan_iter(match=b"ratelimit:*"))  # counted on the cluster


def test_the_byte_limit_holds_for_reads_writes_and_publishes(cluster, news, client, settings):
    settings.CACHE_RATE_LIMIT_BYTES = 10
    get_data_redis().set(item_key(news.pk, b"big"), b"x" * 20, ex=60)
    refusals = [
        client.get(URL, params={"key": "big"}),
        client.put(URL, params={"key": "k", "ttl_seconds": "60"}, content=b"x" * 20),
        publish(client, "room", b"x" * 20),
    ]
    message = "Too much data: a user's tokens may move 10 bytes per second together (CACHE_RATE_LIMIT_BYTES)."
    assert [(response.status_code, response.json()) for response in refusals] == [(429, {"message": message})] * 3
    assert get_data_redis().get(item_key(news.pk, b"k")) is None
    assert not get_data_redis().exists(topic_key(news.pk, "room"))


# --- A cluster that cannot answer ----------------------------------------------------------


def test_an_unreachable_cluster_is_a_503(news, client, settings, unused_port):
    settings.DATA_REDIS_CLUSTER_NODES = [f"127.0.0.1:{unused_port}"]
    cache = client.get(URL, params={"key": "k"})
    topics = publish(client, "room")
    assert (cache.status_code, cache.json()) == (
        503,
        {"message": "The cache is unavailable: Redis cannot be reached. Try again shortly."},
    )
    assert (topics.status_code, topics.json()) == (
        503,
        {"message": "Topics are unavailable: Redis cannot be reached. Try again shortly."},
    )


def test_a_failed_primary_is_a_503_for_its_keys(news, client, settings, tmp_path):
    with redis_cluster(tmp_path) as cluster:
        settings.DATA_REDIS_CLUSTER_NODES = cluster.nodes
        assert client.put(URL, params={"key": "k", "ttl_seconds": "60"}, content=b"v").status_code == 204
        owner = get_data_redis().get_node_from_key(item_key(news.pk, b"k"))
        next(p for p in cluster.processes.started if p.name == f"redis-{owner.port}").kill()

        response = client.get(URL, params={"key": "k"})
        assert (response.status_code, response.json()) == (
            503,
            {"message": "The cache is unavailable: Redis cannot be reached. Try again shortly."},
        )
