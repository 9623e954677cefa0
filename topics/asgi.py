"""Topics over HTTP, `/topics/{cacheName}/{topicName}`, as a lean ASGI app.

POST publishes; GET subscribes by long poll, or as Server-Sent Events when the
request accepts `text/event-stream`. Waiting subscribers hold no thread and no
database connection: they wait on their topic's feed (see feed.py).
"""

import asyncio
import json
import logging
import re
import time

from django.conf import settings
from django.db import DatabaseError

from accounts.authentication import atoken_authenticate, lean_authenticate, trusted_token
from accounts.models import ApiToken, token_digest
from accounts.scopes import describe_missing
from cache_api.keys import cache_name_error
from cache_api.selectors import acache_info, trusted_cache_info
from core import metrics
from core.asgi import (
    MAX_WHOLE_NUMBER,
    HTTPError,
    Receive,
    Request,
    Response,
    Send,
    ascii_whole_number,
    cors_headers,
    lean_app,
    preflight,
)
from core.errors import AuthenticationError
from core.lookups import MISSING
from core.ratelimit import arequest_allowed
from core.redis import REDIS_ERRORS

from .feed import Waiter, feed_join, feed_leave
from .store import TopicRef, topic_publish
from .subscribe import Cursor, Entry, collect, cursor_start, delivered, max_lag

logger = logging.getLogger(__name__)

PREFIX = "/topics/"
METHODS = "GET, POST, OPTIONS"
TOPIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # whole names only: fullmatch
TOPIC_RULE = "A topic name is 1 to 128 characters: letters, digits, '-', '_' and '.', starting with a letter or digit."
TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded")
EVENT_ID = re.compile(r"([0-9]+):([0-9]+)")  # ASCII digits: \d takes other scripts' too
SSE_WRITE_BYTES = 65_536  # a stream's events are written in pieces of about this size


def parse_path(request: Request) -> tuple[str, str]:
    segments = request.path_segments(PREFIX)
    if len(segments) != 2 or not all(segments):
        raise HTTPError(404, "Not Found: topics are at /topics/{cacheName}/{topicName}.")
    cache_name, topic_name = segments
    problem = cache_name_error(cache_name)
    if problem:
        raise HTTPError(400, problem)
    if not TOPIC_NAME.fullmatch(topic_name):
        raise HTTPError(400, TOPIC_RULE)
    return cache_name, topic_name


async def authorize(token: ApiToken, action: str, cache_name: str, topic_name: str) -> TopicRef:
    """The topic, when `token` may do `action` on it now; HTTPError 403 or 404 otherwise."""
    if not token.scope_set.allows("topics", action, cache=cache_name, topic=topic_name):
        raise HTTPError(403, describe_missing("topics", action, cache=cache_name, topic=topic_name))
    cache = await acache_info(cache_name)
    if cache is None:
        raise HTTPError(404, "Cache Not Found")
    return TopicRef(cache_id=cache.id, cache_name=cache_name, name=topic_name)


async def resolve(request: Request, token: ApiToken, action: str) -> TopicRef:
    return await authorize(token, action, *parse_path(request))


async def recheck(request: Request, topic: TopicRef) -> None:
    """Before a subscriber is given anything: the checks its subscribe passed, again (the token
    is not revoked or expired and still allows it, the cache is the same). HTTPError saying why
    not. A token check is trusted for TOKEN_CACHE_SECONDS, so a revocation is seen within that."""
    try:
        token = await atoken_authenticate(request.raw_token)
    except AuthenticationError as error:
        raise HTTPError(401, str(error)) from None
    if (await authorize(token, "subscribe", topic.cache_name, topic.name)).cache_id != topic.cache_id:
        raise HTTPError(404, "Cache Not Found")


def message_kind(request: Request) -> bool:
    """Whether the body is binary, from its Content-Type; HTTPError 400 when it cannot be told."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type:
        raise HTTPError(400, "Missing Content-Type: use text/plain for text or application/octet-stream for binary.")
    if content_type == "application/octet-stream":
        return True
    if content_type.startswith(TEXT_TYPES):
        return False
    raise HTTPError(
        400,
        f"Unsupported Content-Type {content_type!r}: use text/plain for text or application/octet-stream for binary.",
    )


async def publish(request: Request, token: ApiToken) -> Response:
    topic = await resolve(request, token, "publish")
    binary = message_kind(request)
    limit = settings.TOPICS_MAX_MESSAGE_BYTES
    value = await request.body(
        limit, f"The message is larger than the limit of {limit} bytes (TOPICS_MAX_MESSAGE_BYTES)."
    )
    if not value:
        raise HTTPError(400, "The message is empty.")
    if not binary:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(400, "A text message must be UTF-8; send binary as application/octet-stream.") from None
    await topic_publish(topic=topic, user_id=token.user_id, value=value, binary=binary)
    metrics.count("topics_publishes")
    return Response(204)


def whole_number(request: Request, name: str) -> int:
    raw = request.query.get(name) or "0"
    number = ascii_whole_number(raw)
    if number is None:
        raise HTTPError(400, f"{name} must be a whole number of 0 or more, not {raw!r}.")
    return number


async def starting_cursor(request: Request, topic: TopicRef) -> Cursor:
    last_event_id = request.headers.get("last-event-id") or request.query.get("last_event_id")
    if last_event_id:
        match = EVENT_ID.fullmatch(last_event_id.strip())
        page, seq = (ascii_whole_number(match[1]), ascii_whole_number(match[2])) if match else (None, None)
        if page is None or seq is None or seq == MAX_WHOLE_NUMBER:
            raise HTTPError(
                400, f"Last-Event-ID must be '<sequence_page>:<topic_sequence_number>', not {last_event_id!r}."
            )
        return Cursor(page=page, seq=seq + 1)
    return await cursor_start(
        topic,
        sequence_number=whole_number(request, "sequence_number"),
        sequence_page=whole_number(request, "sequence_page"),
    )


class Subscriber:
    """A waiting subscriber: woken by its topic's feed or by its client leaving.

    Its client is watched by one `receive()` at a time, each followed by a callback rather than by a
    coroutine of its own (one less per subscriber held)."""

    __slots__ = ("_receive", "_watcher", "disconnected", "waiter")

    def __init__(self, receive: Receive):
        self.waiter = Waiter()
        self.disconnected = False
        self._receive = receive
        self._watch()

    def _watch(self) -> None:
        self._watcher = asyncio.ensure_future(self._receive())
        self._watcher.add_done_callback(self._received)

    def _received(self, watcher: asyncio.Future) -> None:
        if watcher.cancelled():  # closed
            return
        if watcher.exception() is None and watcher.result()["type"] != "http.disconnect":
            self._watch()
            return
        self.disconnected = True  # left, or can no longer be watched
        self.waiter.set()

    def close(self) -> None:
        self._watcher.cancel()


class Rechecks:
    """`recheck` before each delivery of one subscriber, cheap while nothing can have changed.

    While the trusted token and cache answers are the very objects the last full check passed
    with (a revocation, a narrowed grant or a deleted cache is only seen through a new answer,
    at the latest TOKEN_CACHE_SECONDS later) and the token has not expired since, the outcome
    is the same: two dictionary reads instead of the full check, per subscriber per wake."""

    __slots__ = ("_digest", "_passed", "request", "topic")

    def __init__(self, request: Request, topic: TopicRef):
        self.request, self.topic = request, topic
        self._passed: tuple | None = None  # (token, cache info) of the last full check
        self._digest = token_digest(request.raw_token)

    def _trusted(self) -> tuple:
        return trusted_token(self.request.raw_token, self._digest), trusted_cache_info(self.topic.cache_name)

    async def __call__(self) -> None:
        if self._passed is not None:
            token, info = self._trusted()
            if token is self._passed[0] and info is self._passed[1] and not token.is_expired:
                return
        self._passed = None
        await recheck(self.request, self.topic)
        trusted = self._trusted()
        if MISSING not in trusted:  # nothing trusted (TOKEN_CACHE_SECONDS=0, say): every wake checks in full
            self._passed = trusted


async def long_poll(request: Request, topic: TopicRef, cursor: Cursor, subscriber: Subscriber) -> Response:
    """Wait until there is something for the subscriber, or TOPICS_LONG_POLL_SECONDS pass; then
    answer, if the subscriber may still have it."""
    feed = await feed_join(topic, subscriber.waiter)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.TOPICS_LONG_POLL_SECONDS
        while True:
            subscriber.waiter.clear()
            items, cursor = await collect(topic, feed, cursor, settings.TOPICS_BATCH_SIZE)
            if items or loop.time() >= deadline or subscriber.disconnected:
                break
            await subscriber.waiter.wait(deadline - loop.time())
    finally:
        feed_leave(feed, subscriber.waiter)
    await recheck(request, topic)
    metrics.count("topics_deliveries", delivered(items), "long_poll")
    body = b'{"items": [' + b", ".join(entry.item_json for entry in items) + b"]}"
    return Response(200, body, "application/json", [("cache-control", "no-store")])


def sse_writes(entries: list[Entry]) -> list[bytes]:
    """The entries' events, in writes of about SSE_WRITE_BYTES (one event at least): a write is
    sent only once the client has taken the one before (see `stream`)."""
    writes, pending, size = [], [], 0
    for entry in entries:
        frame = entry.sse_frame
        if pending and size + len(frame) > SSE_WRITE_BYTES:
            writes.append(b"".join(pending))
            pending, size = [], 0
        pending.append(frame)
        size += len(frame)
    if pending:
        writes.append(pending[0] if len(pending) == 1 else b"".join(pending))
    return writes


async def stream(
    send: Send, request: Request, topic: TopicRef, token: ApiToken, cursor: Cursor, subscriber: Subscriber
) -> None:
    """Server-Sent Events until the client leaves, the token stops allowing it (revoked, expired,
    narrowed) or the cache is deleted."""
    feed = await feed_join(topic, subscriber.waiter)
    headers = [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-store"),
        ("x-accel-buffering", "no"),
        *cors_headers(request),
    ]
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(name.encode(), value.encode()) for name, value in headers],
        }
    )
    ending = b""
    rechecked = Rechecks(request, topic)
    heartbeat, limit, lag = settings.TOPICS_SSE_HEARTBEAT_SECONDS, settings.TOPICS_BATCH_SIZE, max_lag()
    body = {"type": "http.response.body", "body": b"", "more_body": True}
    try:
        await send({**body, "body": b": connected\n\n"})
        while not subscriber.disconnected:
            subscriber.waiter.clear()
            entries, cursor = await collect(topic, feed, cursor, limit, lag)
            try:  # before anything is delivered, and on every wake
                await rechecked()
            except HTTPError as error:
                ending = f"event: end\ndata: {json.dumps({'reason': error.message})}\n\n".encode()
                break
            if entries:
                # Each write waits until the client has taken the last (uvicorn's flow control): what a
                # slow reader holds here is bounded, and it is skipped ahead once it is too far behind.
                for write in sse_writes(entries):
                    await send({**body, "body": write})
                metrics.count("topics_deliveries", delivered(entries), "stream")
                continue
            wait = heartbeat
            if token.expires_at is not None:  # wake when it expires, to end the stream then
                wait = min(wait, max(token.expires_at.timestamp() - time.time(), 0.05))
            if not await subscriber.waiter.wait(wait):
                await send({**body, "body": b": keep-alive\n\n"})
    except (*REDIS_ERRORS, DatabaseError) as error:
        logger.warning("Topic stream %s ended: %s", topic.key, error)
        ending = b'event: end\ndata: {"reason": "The service cannot reach its storage; reconnect to resume."}\n\n'
    finally:
        feed_leave(feed, subscriber.waiter)
    if not subscriber.disconnected:
        await send({"type": "http.response.body", "body": ending, "more_body": False})


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


async def handle(request: Request, send: Send) -> Response | None:
    """A response to send, or None when the request was answered as a stream."""
    parse_path(request)  # names are checked before anything is looked up, on every method
    if request.method == "OPTIONS":
        return preflight(request, METHODS)
    if request.method not in ("GET", "POST"):
        raise HTTPError(405, f"Method {request.method} is not allowed here.", [("allow", METHODS)])
    token = await lean_authenticate(request)
    if request.method == "POST":
        return await publish(request, token)

    topic = await resolve(request, token, "subscribe")
    await arequest_allowed(token.user_id)  # a subscribe (long poll or stream) is a request of the budget
    cursor = await starting_cursor(request, topic)
    subscriber = Subscriber(request.receive)
    mode = "stream" if wants_event_stream(request) else "long_poll"
    metrics.gauge_add("topics_subscribers", 1, mode)
    try:
        if mode == "stream":
            await stream(send, request, topic, token, cursor, subscriber)
            return None
        return await long_poll(request, topic, cursor, subscriber)
    finally:
        metrics.gauge_add("topics_subscribers", -1, mode)
        subscriber.close()


def operation(request: Request) -> str:
    """The request's operation, as the metrics name it."""
    if request.method == "POST":
        return "publish"
    if request.method == "GET":
        return "stream" if wants_event_stream(request) else "long_poll"
    return "preflight" if request.method == "OPTIONS" else "other"


topics_app = lean_app(handle, unavailable="Topics are unavailable", face="topics", operation=operation)
