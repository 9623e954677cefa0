"""What the lean ASGI apps (the cache and topics hot paths) share.

These paths do not go through Django's request handler: no sessions, CSRF,
middleware or DRF negotiation. They parse the little they need, authenticate
with the token routine of `accounts` (`accounts.authentication.lean_authenticate`,
trusting a check for TOKEN_CACHE_SECONDS) and answer `{"message": "..."}` on
error, as the Momento HTTP API does. Every answer carries the security headers
Django's middleware gives the rest of the service (`security_headers`).
"""

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import unquote, unquote_to_bytes

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DatabaseError
from django.dispatch import receiver

from . import metrics
from .redis import REDIS_ERRORS

logger = logging.getLogger(__name__)

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A whole number as clients write it: ASCII digits, nothing else. str.isdigit() and int()
# also take other scripts' digits ('²', '٣'), '_' and spaces, none of which is meant here.
ASCII_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
MAX_WHOLE_NUMBER = 2**63 - 1  # the largest Redis takes as a counter or a stream id part


def ascii_whole_number(text: str | bytes, *, signed: bool = False) -> int | None:
    """`text` as an int when it is ASCII digits (after an optional sign when `signed`) of at
    most MAX_WHOLE_NUMBER; None otherwise."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if not ASCII_WHOLE_NUMBER.fullmatch(text) or (not signed and text[0] in "+-"):
        return None
    number = int(text)
    return number if abs(number) <= MAX_WHOLE_NUMBER else None


class HTTPError(Exception):
    """Ends a request with `status` and `{"message": message}`."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def message(cls, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> "Response":
        return cls(status, json.dumps({"message": message}).encode(), "application/json", list(headers))

    async def send(self, send: Send, extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        headers = [(name.encode(), value.encode()) for name, value in [*self.headers, *extra_headers]]
        if self.content_type:
            headers.append((b"content-type", self.content_type.encode()))
        if self.status not in (204, 304):
            headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class Request:
    """The parts of an ASGI HTTP scope the lean apps read."""

    def __init__(self, scope: Scope, receive: Receive):
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers: dict[str, str] = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        self.raw_token: str | None = None  # set by accounts.authentication.lean_authenticate()

    @cached_property
    def raw_query(self) -> dict[bytes, bytes]:
        """Query parameters as bytes, so a cache `key` keeps every byte it was sent with
        (the first value of each name counts). Parsed once, when first asked for."""
        pairs: dict[bytes, bytes] = {}
        for part in self.scope.get("query_string", b"").split(b"&"):
            if part:
                name, _, value = part.partition(b"=")
                pairs.setdefault(
                    unquote_to_bytes(name.replace(b"+", b" ")), unquote_to_bytes(value.replace(b"+", b" "))
                )
        return pairs

    @cached_property
    def query(self) -> dict[str, str]:
        """The query parameters as text."""
        return {
            name.decode("utf-8", "replace"): value.decode("utf-8", "replace") for name, value in self.raw_query.items()
        }

    def path_segments(self, prefix: str) -> list[str]:
        """The path after `prefix`, split on `/` and URL-decoded."""
        raw = self.scope.get("raw_path") or self.path.encode()
        rest = raw.decode("latin-1")[len(prefix) :]
        return [unquote(part) for part in rest.split("/")]

    async def body(self, limit: int, too_large: str) -> bytes:
        """The whole body; HTTPError 400 with `too_large` once it passes `limit` bytes."""
        length = ascii_whole_number(self.headers.get("content-length") or "0")
        if length is None or length > limit:
            raise HTTPError(400, too_large)
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "The client went away before sending the whole body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HTTPError(400, too_large)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


# --- CORS --------------------------------------------------------------------


def cors_headers(request: Request) -> list[tuple[str, str]]:
    """The CORS headers for a response to this request (none when its origin is not allowed)."""
    origin = request.headers.get("origin")
    allowed = settings.CORS_ALLOWED_ORIGINS
    if not origin or not allowed:
        return []
    if "*" in allowed:
        return [("access-control-allow-origin", "*"), ("access-control-expose-headers", "Retry-After")]
    if origin in allowed:
        return [
            ("access-control-allow-origin", origin),
            ("vary", "Origin"),
            ("access-control-expose-headers", "Retry-After"),
        ]
    return []


def preflight(request: Request, methods: str) -> Response:
    """The answer to a CORS preflight (OPTIONS) request."""
    headers = cors_headers(request)
    if headers:
        headers += [
            ("access-control-allow-methods", methods),
            ("access-control-allow-headers", "Authorization, Content-Type, Last-Event-ID"),
            ("access-control-max-age", str(settings.CORS_MAX_AGE)),
        ]
    return Response(204, headers=[("allow", methods), *headers])


# --- Security headers ----------------------------------------------------------


@dataclass(frozen=True)
class SecurityHeaders:
    """What the settings say every lean answer carries, worked out once (the hot paths
    would otherwise pay for a dozen settings lookups per request)."""

    always: tuple[tuple[bytes, bytes], ...]  # on every answer
    hsts: tuple[bytes, bytes] | None  # on answers to HTTPS requests
    proxy_header: str | None  # the request header that says HTTPS, when a proxy is trusted to send it
    proxy_secure_value: str | None

    @classmethod
    def from_settings(cls) -> "SecurityHeaders":
        always = []
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            always.append((b"x-content-type-options", b"nosniff"))
        policy = settings.SECURE_REFERRER_POLICY
        if policy:
            value = policy if isinstance(policy, str) else ",".join(policy)
            always.append((b"referrer-policy", value.encode()))
        if settings.X_FRAME_OPTIONS:
            always.append((b"x-frame-options", settings.X_FRAME_OPTIONS.upper().encode()))
        if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            always.append((b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
        hsts = None
        if settings.SECURE_HSTS_SECONDS:
            value = f"max-age={settings.SECURE_HSTS_SECONDS}"
            if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                value += "; includeSubDomains"
            if settings.SECURE_HSTS_PRELOAD:
                value += "; preload"
            hsts = (b"strict-transport-security", value.encode())
        proxy_header = proxy_secure_value = None
        if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
            header, proxy_secure_value = settings.SECURE_PROXY_SSL_HEADER
            proxy_header = header.removeprefix("HTTP_").replace("_", "-").lower()
        return cls(tuple(always), hsts, proxy_header, proxy_secure_value)

    def is_secure(self, request: Request) -> bool:
        """Whether the request came over HTTPS, judged as Django judges it: from the
        SECURE_PROXY_SSL_HEADER header when that is set and present, else the scheme."""
        if self.proxy_header:
            value = request.headers.get(self.proxy_header)
            if value is not None:
                return value.split(",", 1)[0].strip() == self.proxy_secure_value
        return request.scope.get("scheme") == "https"

    @cached_property
    def _by_kind(self) -> dict[tuple[bool, bool], tuple[tuple[bytes, bytes], ...]]:
        """The headers for each (over HTTPS, a preflight) pair, built once."""
        no_store = ((b"cache-control", b"no-store"),)  # not on a preflight: its lifetime is Access-Control-Max-Age
        hsts = (self.hsts,) if self.hsts is not None else ()
        return {
            (secure, preflight): self.always + (hsts if secure else ()) + (() if preflight else no_store)
            for secure in (False, True)
            for preflight in (False, True)
        }

    def for_request(self, request: Request) -> tuple[tuple[bytes, bytes], ...]:
        secure = self.hsts is not None and self.is_secure(request)
        return self._by_kind[secure, request.method == "OPTIONS"]


_security_headers: SecurityHeaders | None = None


@receiver(setting_changed)
def _forget_security_headers(**kwargs) -> None:
    global _security_headers
    _security_headers = None


def security_headers(request: Request) -> tuple[tuple[bytes, bytes], ...]:
    """The headers Django's SecurityMiddleware and XFrameOptionsMiddleware add to its
    responses, from the same settings, plus `Cache-Control: no-store` (an answer may
    hold a cached value or a topic's messages, and its URL a token). A response that
    sets one of them itself keeps its own."""
    global _security_headers
    if _security_headers is None:
        _security_headers = SecurityHeaders.from_settings()
    return _security_headers.for_request(request)


def with_headers(send: Send, extra: tuple[tuple[bytes, bytes], ...]) -> Send:
    """`send`, adding `extra` to the response's headers where the response has not set
    them (header names are lower case, as ASGI has them)."""

    async def send_with_headers(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers") or []
            own = {name for name, _ in headers}
            message["headers"] = [*headers, *(item for item in extra if item[0] not in own)]
        await send(message)

    return send_with_headers


Handler = Callable[["Request", Send], Awaitable["Response | None"]]


def lean_app(handle: Handler, *, unavailable: str, face: str, operation: Callable[[Request], str]) -> ASGIApp:
    """An ASGI app from `handle(request, send)`, which answers with a Response (or
    streams the answer itself and returns None). Errors are answered alike on every
    lean face: HTTPError as its `{"message"}`, storage out of reach as a 503 that
    starts with `unavailable`, anything else as a 500 without internals. Every
    answer, streamed or not, carries the security headers. Every request is counted
    in the metrics as `face` and `operation(request)`, by status."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive)
        send = with_headers(send, security_headers(request))
        try:
            response = await handle(request, send)
        except HTTPError as error:
            response = Response.message(error.status, error.message, error.headers)
        except REDIS_ERRORS as error:
            logger.warning("%s %s: Redis unreachable: %s", request.method, request.path, error)
            response = Response.message(503, f"{unavailable}: Redis cannot be reached. Try again shortly.")
        except DatabaseError as error:
            logger.warning("%s %s: database unreachable: %s", request.method, request.path, error)
            response = Response.message(503, f"{unavailable}: the database cannot be reached. Try again shortly.")
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            response = Response.message(500, "Internal server error.")
        if response is not None:
            await response.send(send, [] if request.method == "OPTIONS" else cors_headers(request))
        status = 200 if response is None else response.status  # None: streamed, which starts with a 200
        metrics.request_observed(face, operation(request), request.method, status, time.perf_counter() - started)

    return app


class PrefixRouter:
    """Sends HTTP requests whose path starts with a prefix to a lean app, the rest to Django."""

    def __init__(self, routes: dict[str, ASGIApp], default: ASGIApp):
        self.routes = list(routes.items())
        self.default = default

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # The chosen app's own awaitable, not one of the router's awaiting it: a request held open (an idle
        # subscriber, thousands to a process) keeps no frame of the router's.
        if scope["type"] == "http":
            path = scope["path"]
            for prefix, app in self.routes:
                if path.startswith(prefix):
                    return app(scope, receive, send)
        return self.default(scope, receive, send)


# --- Request bounds ----------------------------------------------------------------

# What a request may carry as a body, from its scope: (the limit in bytes, what to say past it).
BodyLimit = Callable[[Scope], tuple[int, str]]
# A refusal in the face's own error format, from the scope, the status and the message: (body, content type).
ErrorFormat = Callable[[Scope, int, str], tuple[bytes, str]]


class RequestBounds:
    """In front of every app: refuses a request whose head or body passes the bounds before
    anything reads it (and before authentication's answer is known).

    More than MAX_REQUEST_HEADERS header fields, or more than MAX_REQUEST_HEADER_BYTES of
    them: 431. A Content-Length above `body_limit(scope)`: 413 at once, the body unread. A body
    sent without a length (chunked) is counted as the app reads it: past the limit, the 413 is
    answered (unless the app has already answered) and the app sees the client leave.
    """

    def __init__(self, app: ASGIApp, *, body_limit: BodyLimit, error_format: ErrorFormat):
        self.app = app
        self.body_limit = body_limit
        self.error_format = error_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        if len(headers) > settings.MAX_REQUEST_HEADERS:
            message = f"Too many header fields: at most {settings.MAX_REQUEST_HEADERS} (MAX_REQUEST_HEADERS)."
            await self.refuse(scope, receive, send, 431, message)
            return
        if sum(len(name) + len(value) for name, value in headers) > settings.MAX_REQUEST_HEADER_BYTES:
            message = (
                f"The header fields are too large: at most {settings.MAX_REQUEST_HEADER_BYTES} bytes together "
                "(MAX_REQUEST_HEADER_BYTES)."
            )
            await self.refuse(scope, receive, send, 431, message)
            return
        length = chunked = None
        for name, value in headers:
            if name == b"content-length":
                length = ascii_whole_number(value)
                if length is None:
                    await self.refuse(scope, receive, send, 400, "Content-Length must be a whole number of bytes.")
                    return
            elif name == b"transfer-encoding":
                chunked = True
        if length is None and not chunked:  # no body: nothing to count
            await self.app(scope, receive, send)
            return
        limit, too_large = self.body_limit(scope)
        if length is not None:  # the server delivers no more than the declared length
            if length > limit:
                await self.refuse(scope, receive, send, 413, too_large)
            else:
                await self.app(scope, receive, send)
            return
        await self.counting(scope, receive, send, limit, too_large)

    async def counting(self, scope: Scope, receive: Receive, send: Send, limit: int, too_large: str) -> None:
        """Run the app, counting the body it reads; past `limit`, answer 413 in its place."""
        received, answered, refused = 0, False, False

        async def counted_receive() -> dict:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not answered:
                        await self.refuse(scope, receive, send, 413, too_large)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal answered
            if refused:  # the refusal is the answer
                return
            answered = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)

    async def refuse(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        body, content_type = self.error_format(scope, status, message)
        response = Response(status, body, content_type, [("connection", "close")])
        await response.send(with_headers(send, security_headers(Request(scope, receive))))
