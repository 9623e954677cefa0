import base64
import json
import socket
import threading
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from cache_api.keys import topic_key, topic_meta_key
from cache_api.models import Cache
from core.redis import get_redis
from harness.waiting import wait_until
from tests.topics.conftest import EventStream, poll, publish, waiting_subscribers

pytestmark = pytest.mark.django_db(transaction=True)


def texts(items: list[dict]) -> list[str]:
    return [entry["item"]["value"]["text"] for entry in items if "item" in entry]


def seqs(items: list[dict]) -> list[int]:
    return [entry["item"]["topic_sequence_number"] for entry in items if "item" in entry]


# --- Publish -------------------------------------------------------------------------


def test_the_reference_publish_examples(live, chat, token):
    raw = token("topics:publishsubscribe")
    by_query = httpx.post(
        f"{live.url}/topics/chat/example?token={raw}",
        content=b"hello world!",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # what curl -d sends
    by_header = httpx.post(f"{live.url}/topics/chat/example", content=b"hello world!",
                           headers={"Authorization": raw, "Content-Type": "text/plain"})  # fmt: skip
    assert (by_query.status_code, by_header.status_code) == (204, 204)
    assert texts(poll(live.url, raw, topic="example", sequence_number=1).json()["items"]) == ["hello world!"] * 2


def test_text_and_binary_arrive_exactly_as_published(live, chat, token):
    raw = token()
    blob = bytes(range(256))
    assert publish(live.url, raw, "héllo ✓").status_code == 204
    assert publish(live.url, raw, blob, content_type="application/octet-stream").status_code == 204
    items = poll(live.url, raw, sequence_number=1).json()["items"]
    assert items[0]["item"]["value"] == {"text": "héllo ✓"}
    assert base64.b64decode(items[1]["item"]["value"]["binary"]) == blob
    page = items[0]["item"]["sequence_page"]
    assert page > 0 and items[1]["item"]["sequence_page"] == page
    assert seqs(items) == [1, 2]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"x", None, "Missing Content-Type: use text/plain for text or application/octet-stream for binary."),
        (b"x", "image/png", "Unsupported Content-Type 'image/png': use text/plain for text or application/octet-stream "
         "for binary."),
        (b"", "text/plain", "The message is empty."),
        (b"\xff\xfe", "text/plain", "A text message must be UTF-8; send binary as application/octet-stream."),
    ],
)  # fmt: skip
def test_a_bad_publish_is_a_400_saying_why(live, chat, token, body, content_type, message):
    headers = {"Authorization": token()}
    if content_type:
        headers["Content-Type"] = content_type
    response = httpx.post(f"{live.url}/topics/chat/room", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == {"message": message}


def test_a_message_over_the_limit_is_a_413_naming_it(live, chat, token):
    response = httpx.post(f"{live.url}/topics/chat/room", content=b"x" * 65537,
                          headers={"Authorization": token(), "Content-Type": "text/plain"})  # fmt: skip
    assert response.status_code == 413
    assert response.json() == {
        "message": "The message is larger than the limit of 65536 bytes (TOPICS_MAX_MESSAGE_BYTES)."
    }


def test_a_bad_topic_name_is_a_400(live, chat, token):
    response = publish(live.url, token(), "x", topic="no%20spaces")
    assert response.status_code == 400
    assert response.json()["message"].startswith("A topic name is 1 to 128 characters")


def test_a_token_in_both_places_is_a_400(live, chat, token):
    raw = token()
    response = httpx.post(f"{live.url}/topics/chat/room?token={raw}", content=b"x",
                          headers={"Authorization": raw, "Content-Type": "text/plain"})  # fmt: skip
    assert response.status_code == 400
    assert "not both" in response.json()["message"]


def test_no_token_unknown_cache_and_wrong_method(live, chat, token):
    anonymous = httpx.post(f"{live.url}/topics/chat/room", content=b"x", headers={"Content-Type": "text/plain"})
    assert anonymous.status_code == 401
    missing = publish(live.url, token(), "x").request.url.copy_with(path="/topics/nope/room")
    response = httpx.post(missing, content=b"x", headers={"Authorization": token(), "Content-Type": "text/plain"})
    assert (response.status_code, response.json()) == (404, {"message": "Cache Not Found"})
    assert httpx.delete(f"{live.url}/topics/chat/room", headers={"Authorization": token()}).status_code == 405


@pytest.mark.parametrize(
    ("scope", "can_publish", "can_subscribe"),
    [
        ("topics:publishsubscribe", True, True),
        ("topics:publishonly:chat", True, False),
        ("topics:subscribeonly:chat", False, True),
        ("topics:publishsubscribe:chat:topic=room", True, True),
        ("topics:publishsubscribe:chat:topic_prefix=ro", True, True),
        ("topics:publishsubscribe:chat:topic_prefix=lobby", False, False),
        ("topics:publishsubscribe:other", False, False),
        ("cache:readwrite", False, False),
    ],
)
def test_every_scope_allows_what_it_says_and_no_more(live, chat, token, scope, can_publish, can_subscribe, settings):
    settings.TOPICS_LONG_POLL_SECONDS = 1
    raw = token(scope)
    assert publish(live.url, raw, "x").status_code == (204 if can_publish else 403)
    response = poll(live.url, raw, sequence_number=1)
    assert response.status_code == (200 if can_subscribe else 403)
    if not can_subscribe:
        assert "needs a topics scope with role" in response.json()["message"]


def test_publishing_past_the_rate_limit_is_a_429(live, chat, token, settings):
    settings.CACHE_RATE_LIMIT_REQUESTS = 2
    raw = token()
    # The limit counts per second: a few more publishes than it in a row always put more than it into one second.
    refused = next((r for r in (publish(live.url, raw, "x") for _ in range(20)) if r.status_code == 429), None)
    assert refused is not None
    assert refused.headers["retry-after"] == "1"


def test_redis_down_is_a_503(live, chat, token, settings):
    raw = token()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = publish(live.url, raw, "x")
    assert response.status_code == 503
    assert response.json() == {"message": "Topics are unavailable: Redis cannot be reached. Try again shortly."}


# --- Long poll ------------------------------------------------------------------------------


def test_a_long_poll_waits_for_the_next_message(live, chat, token):
    raw = token()
    publish(live.url, raw, "before")
    answer = {}
    waiting = threading.Thread(target=lambda: answer.update(r=poll(live.url, raw, sequence_number=0)))
    waiting.start()
    time.sleep(0.5)  # let the poll start waiting; publishing earlier would make it not wait at all
    publish(live.url, raw, "after")
    waiting.join(timeout=20)
    assert texts(answer["r"].json()["items"]) == ["after"]
    assert seqs(answer["r"].json()["items"]) == [2]


def test_sequence_number_zero_starts_from_now(live, chat, token, settings):
    settings.TOPICS_LONG_POLL_SECONDS = 1
    raw = token()
    publish(live.url, raw, "old")
    assert poll(live.url, raw, sequence_number=0).json() == {"items": []}


def test_an_empty_answer_comes_after_the_bounded_wait(live, chat, token, settings):
    settings.TOPICS_LONG_POLL_SECONDS = 1
    response = poll(live.url, token(), sequence_number=0)
    assert response.status_code == 200
    assert response.json() == {"items": []}


def test_resuming_by_sequence_number_misses_nothing(live, chat, token, settings):
    settings.TOPICS_BATCH_SIZE = 4
    raw = token()
    for number in range(10):
        publish(live.url, raw, f"m{number}")
    received, sequence, page = [], 1, 0
    while len(received) < 10:
        items = poll(live.url, raw, sequence_number=sequence, sequence_page=page).json()["items"]
        assert len(items) <= 4
        received += texts(items)
        sequence, page = items[-1]["item"]["topic_sequence_number"] + 1, items[-1]["item"]["sequence_page"]
    assert received == [f"m{number}" for number in range(10)]


def test_a_position_older_than_the_window_gets_a_discontinuity(live, chat, token, settings):
    settings.TOPICS_REPLAY_LENGTH = 10  # trimmed in blocks of about 100 entries
    settings.TOPICS_BATCH_SIZE = 1000
    raw = token()
    for number in range(350):
        publish(live.url, raw, f"m{number}")
    items = poll(live.url, raw, sequence_number=1, sequence_page=0).json()["items"]
    gap = items[0]["discontinuity"]
    first = items[1]["item"]["topic_sequence_number"]
    assert first > 1
    assert gap == {"last_topic_sequence": 0, "new_topic_sequence": first, "new_sequence_page": gap["new_sequence_page"]}
    assert seqs(items) == list(range(first, 351))


def test_a_restarted_numbering_gets_a_discontinuity_with_the_new_page(live, chat, token):
    raw = token()
    publish(live.url, raw, "first life")
    old_page = poll(live.url, raw, sequence_number=1).json()["items"][0]["item"]["sequence_page"]
    get_redis().delete(topic_key(chat.pk, "room"), topic_meta_key(chat.pk, "room"))  # as if it expired
    get_redis().hset(topic_meta_key(chat.pk, "room"), mapping={"page": old_page + 7, "seq": 0})
    publish(live.url, raw, "second life")
    items = poll(live.url, raw, sequence_number=2, sequence_page=old_page).json()["items"]
    assert items[0] == {
        "discontinuity": {"last_topic_sequence": 1, "new_topic_sequence": 1, "new_sequence_page": old_page + 7}
    }
    assert texts(items) == ["second life"] and seqs(items) == [1]


def test_a_bad_sequence_number_is_a_400(live, chat, token):
    response = poll(live.url, token(), sequence_number="soon")
    assert response.status_code == 400
    assert response.json() == {"message": "sequence_number must be a whole number of 0 or more, not 'soon'."}


# --- Order ----------------------------------------------------------------------------------


def test_two_servers_publishing_at_once_keep_one_dense_order(live, second_live, chat, token, settings):
    settings.TOPICS_BATCH_SIZE = 1000
    raw = token()

    def publisher(base: str, name: str) -> None:
        for number in range(40):
            assert publish(base, raw, f"{name}{number}").status_code == 204

    threads = [threading.Thread(target=publisher, args=(live.url, "a")),
               threading.Thread(target=publisher, args=(second_live.url, "b"))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first = poll(live.url, raw, sequence_number=1).json()["items"]
    second = poll(second_live.url, raw, sequence_number=1).json()["items"]
    assert first == second
    assert seqs(first) == list(range(1, 81))
    received = texts(first)
    assert [t for t in received if t[0] == "a"] == [f"a{n}" for n in range(40)]
    assert [t for t in received if t[0] == "b"] == [f"b{n}" for n in range(40)]


# --- Server-Sent Events ------------------------------------------------------------------------


def test_sse_delivers_each_message_as_an_event_with_its_id(live, chat, token):
    raw = token()
    events = EventStream(f"{live.url}/topics/chat/room?token={raw}")
    assert events.status == 200
    assert events.wait_for_comment("connected")
    publish(live.url, raw, "one")
    publish(live.url, raw, b"\x00\x01", content_type="application/octet-stream")
    got = events.wait_for(2)
    page = int(got[0]["id"].split(":")[0])
    assert [e["id"] for e in got] == [f"{page}:1", f"{page}:2"]
    assert got[0]["data"] == f'{{"topic_sequence_number": 1, "sequence_page": {page}, "value": {{"text": "one"}}}}'
    assert '"binary": "AAE="' in got[1]["data"]


def test_sse_resumes_exactly_after_last_event_id(live, chat, token):
    raw = token()
    for number in range(5):
        publish(live.url, raw, f"m{number}")
    page = poll(live.url, raw, sequence_number=1).json()["items"][0]["item"]["sequence_page"]
    events = EventStream(f"{live.url}/topics/chat/room?token={raw}", headers={"Last-Event-ID": f"{page}:2"})
    got = events.wait_for(3)
    assert [e["id"] for e in got] == [f"{page}:3", f"{page}:4", f"{page}:5"]
    by_query = EventStream(f"{live.url}/topics/chat/room?token={raw}&last_event_id={page}:4")
    assert [e["id"] for e in by_query.wait_for(1)] == [f"{page}:5"]


def test_sse_sends_heartbeats_and_discontinuities(live, chat, token, settings):
    settings.TOPICS_SSE_HEARTBEAT_SECONDS = 1
    settings.TOPICS_REPLAY_LENGTH = 10
    raw = token()
    for number in range(300):
        publish(live.url, raw, f"m{number}")
    page = poll(live.url, raw, sequence_number=300).json()["items"][0]["item"]["sequence_page"]
    events = EventStream(f"{live.url}/topics/chat/room?token={raw}&sequence_number=1&sequence_page={page}")
    first = events.wait_for(1)[0]
    assert first["event"] == "discontinuity"
    assert '"last_topic_sequence": 0' in first["data"]
    assert events.wait_for_comment("keep-alive", timeout=5)


def test_sse_ends_when_the_token_expires(live, chat, make_token):
    _, raw = make_token(expires_at=timezone.now() + timedelta(seconds=1.5))
    events = EventStream(f"{live.url}/topics/chat/room?token={raw}")
    assert events.ended.wait(10)
    assert events.events[-1] == {"event": "end", "data": '{"reason": "Token has expired."}'}


def test_sse_ends_when_the_cache_is_deleted(live, chat, token, settings):
    settings.TOPICS_SSE_HEARTBEAT_SECONDS = 1
    settings.CACHE_LOOKUP_SECONDS = 0
    raw = token()
    events = EventStream(f"{live.url}/topics/chat/room?token={raw}")
    Cache.objects.filter(pk=chat.pk).delete()
    assert events.ended.wait(10)
    assert events.events[-1] == {"event": "end", "data": '{"reason": "Cache Not Found"}'}


@pytest.mark.parametrize("accept", ["text/event-stream", "*/*"])
def test_a_subscriber_whose_client_leaves_is_let_go_at_once(live, chat, token, accept):
    """Neither a stream nor a long poll waits for its next message, keep-alive or deadline to notice it."""
    before = waiting_subscribers()
    host, port = live.url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)))
    request = f"GET /topics/chat/room?token={token()} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\n\r\n"
    client.sendall(request.encode())
    wait_until(lambda: waiting_subscribers() == before + 1, what="the subscriber to wait", timeout=10)
    client.close()
    wait_until(lambda: waiting_subscribers() == before, what="the subscriber to be let go", timeout=5)


class StuckSubscriber:
    """An SSE subscriber on a plain socket that reads nothing after its stream opens (until told
    to), with a small receive buffer: a client too slow for what is published."""

    def __init__(self, base: str, raw: str):
        host, port = base.removeprefix("http://").split(":")
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.settimeout(30)
        self.socket.connect((host, int(port)))
        self.socket.sendall(
            f"GET /topics/chat/room?token={raw} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        self.received = b""
        while b": connected" not in self.received:
            self.received += self.socket.recv(4096)

    def read_until(self, text: bytes) -> list[dict]:
        """Read on until the event with `text` has come whole; the stream's events so far."""
        while text not in self.received or b"\n\n" not in self.received[self.received.index(text) :]:
            self.received += self.socket.recv(65536)
        self.socket.close()
        head, _, chunked = self.received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
        body = b""
        while chunked:
            size, _, rest = chunked.partition(b"\r\n")
            body, chunked = body + rest[: int(size, 16)], rest[int(size, 16) + 2 :]
        events = []
        for block in body.decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
            if fields:
                events.append(fields)
        return events


def test_a_subscriber_too_slow_to_keep_up_is_skipped_ahead_with_a_discontinuity(live, chat, token, settings):
    settings.TOPICS_SUBSCRIBER_MAX_LAG = 20
    raw = token()
    stuck = StuckSubscriber(live.url, raw)
    other = EventStream(f"{live.url}/topics/chat/room?token={raw}")
    assert other.wait_for_comment("connected")
    count, size = 300, 60_000  # 18 MB: far more than the socket buffers between the stuck client and the server
    for number in range(1, count + 1):
        assert publish(live.url, raw, f"{number:04}" + "x" * size).status_code == 204

    # The other subscriber got everything, in order, while the stuck one read nothing.
    got = other.wait_for(count, timeout=60)
    page = int(got[0]["id"].split(":")[0])
    assert [event["id"] for event in got] == [f"{page}:{number}" for number in range(1, count + 1)]

    # The stuck one, reading at last: skipped ahead, told so, then the newest messages and none twice.
    events = stuck.read_until(f"id: {page}:{count}\n".encode())
    gaps = [json.loads(event["data"]) for event in events if event.get("event") == "discontinuity"]
    assert gaps and all(gap["new_sequence_page"] == page for gap in gaps)
    expected, skipped = 1, 0
    for event in events:
        if event.get("event") == "discontinuity":
            gap = json.loads(event["data"])
            assert gap["last_topic_sequence"] == expected - 1 and gap["new_topic_sequence"] > expected
            skipped += gap["new_topic_sequence"] - expected
            expected = gap["new_topic_sequence"]
        else:
            assert event["id"] == f"{page}:{expected}"
            assert json.loads(event["data"])["value"]["text"].startswith(f"{expected:04}")
            expected += 1
    assert expected == count + 1
    assert skipped > count // 2  # what it could not take was skipped, not buffered for it


# --- CORS ----------------------------------------------------------------------------------------


def test_a_cors_preflight_is_answered(live, chat):
    response = httpx.options(
        f"{live.url}/topics/chat/room",
        headers={"Origin": "https://app.example.org", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Last-Event-ID" in response.headers["access-control-allow-headers"]


def test_the_schema_describes_publish_and_subscribe(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = schema["paths"]["/topics/{cacheName}/{topicName}"]
    assert set(operations) == {"get", "post"}
    assert "text/event-stream" in operations["get"]["responses"]["200"]["content"]
