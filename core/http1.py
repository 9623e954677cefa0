"""HTTP/1.1 on asyncio: one request at a time on each kept-alive connection, answers parsed by httptools.

The wire under `core.outbound`, which decides where to connect and when. A request
is written in one piece (the head, then the body); the answer is read as it arrives,
its headers bounded (MAX_HEADER_BYTES, MAX_HEADERS) and its body cut at the caller's
limit, after which the connection is closed rather than drained. A connection is kept
for the next request only when the answer was read whole and the peer keeps it open.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import httptools
from yarl import URL

MAX_HEADER_BYTES = 65_536  # of one response's header names and values together
MAX_HEADERS = 256
# Bytes read before a response's headers are complete (interim 1xx answers included), at most: the parser
# holds a header line whole until it ends, so a line that never ends is cut here.
MAX_HEAD_BYTES = 2 * MAX_HEADER_BYTES
# Bytes read for one response at most, as a multiple of the body kept plus the head: chunk framing and
# trailers around the body are bounded too.
MAX_FRAMING_FACTOR = 8
# Methods a request may be sent again for on a fresh connection when a kept-alive one was found closed.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Headers the connection itself writes; a caller's own are dropped.
FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Methods that carry a body: sent with Content-Length even when it is empty.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ProtocolError(Exception):
    """The peer's answer is not an HTTP/1.x response that can be read (or is too large to)."""


class ConnectionClosed(Exception):
    """The connection ended before the response was complete."""


class RequestNotSendable(ValueError):
    """A header name or value cannot be written on the wire as given."""


@dataclass(frozen=True)
class Response:
    status_code: int
    http_version: str  # "HTTP/1.1"
    headers: list[tuple[str, str]]
    body: bytes  # at most the caller's limit of it
    truncated: bool  # whether the body went on past what was read
    elapsed: float  # seconds from the caller's start (connecting included) to the end of reading

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


def request_head(method: str, target: URL, headers: Iterable[tuple[str, str]], content_length: int | None) -> bytes:
    """The request line and headers; RequestNotSendable for a header that cannot be written as given."""
    host = target.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    if not target.is_default_port():
        host = f"{host}:{target.port}"
    if not _TOKEN.fullmatch(method):
        raise RequestNotSendable(f"{method!r} is not a method.")
    lines = [f"{method} {target.raw_path_qs or '/'} HTTP/1.1", f"Host: {host}"]
    for name, value in headers:
        if name.lower() in FRAMING_HEADERS:
            continue
        value = str(value)
        if not _TOKEN.fullmatch(name):
            raise RequestNotSendable(f"{name!r} is not a header name.")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise RequestNotSendable(f"The value of {name} holds a line break or NUL.")
        lines.append(f"{name}: {value}")
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as error:
        raise RequestNotSendable(f"A header holds a character HTTP/1.1 cannot carry ({error.reason}).") from None


class Connection(asyncio.Protocol):
    """One connection to one peer; `exchange` sends a request and waits for its whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = 0  # requests made on it
        self.idle_since = time.monotonic()
        self.reusable = False
        self._waiter: asyncio.Future | None = None

    # --- asyncio -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None:
            if self._headers_done and self._until_close:
                self._finish(reusable=False)  # a body that runs until the peer closes: this is its end
            else:
                self._fail(ConnectionClosed("The connection closed before the response was complete."))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked for: a peer that talks out of turn is not kept
            self.close()
            return
        self._received = True
        self._read += len(data)
        if not self._headers_done and self._read > MAX_HEAD_BYTES:
            self._problem = f"The response's head is longer than {MAX_HEAD_BYTES:,} bytes."
        elif self._read > self._most:
            self._problem = f"The response runs past {self._most:,} bytes of framing for its body."
        try:
            if self._problem:
                raise ProtocolError(self._problem)
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, ProtocolError) as error:
            problem = self._problem or f"The answer is not a readable HTTP/1.1 response ({type(error).__name__})."
            self._fail(ProtocolError(problem))
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @property
    def usable(self) -> bool:
        """Open, as far as can be told now (a peer's close read in this turn of the loop counts)."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    # --- one exchange -------------------------------------------------------------

    async def exchange(
        self,
        head: bytes,
        body: bytes | None,
        *,
        limit: int,
        deadline: float,
        started: float,
        head_only: bool = False,
    ) -> Response:
        """Send the request and wait for the response (at most `limit` bytes of its body are kept);
        TimeoutError at `deadline` (the loop's time), the connection then closed. The response's
        `elapsed` counts from `started` (`time.monotonic()`)."""
        self._parser = httptools.HttpResponseParser(self)
        self._limit, self._head_only, self._started = limit, head_only, started
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._body = bytearray()
        self._status = 0
        self._headers_done = self._until_close = self._received = False
        self._problem = ""
        self._read = 0
        self._most = MAX_FRAMING_FACTOR * limit + 2 * MAX_HEAD_BYTES
        self.used += 1
        self.reusable = False
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        # A timer of the loop's own, cancelled with the answer: cheaper than a timeout context per request.
        self._timer = loop.call_at(deadline, self._expire)
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)
        return await self._waiter

    @property
    def received_any(self) -> bool:
        return self._received

    def _expire(self) -> None:
        self._fail(TimeoutError())
        self.close()

    def _finish(self, *, reusable: bool, truncated: bool = False) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is None:  # finished already (cut short, or a HEAD answer): what follows changes nothing
            return
        self._timer.cancel()
        # Not kept when any of the request is still unsent (a peer that answered before reading it all).
        unsent = self.transport is not None and self.transport.get_write_buffer_size() > 0
        self.reusable = reusable and not truncated and not self.closed and not unsent
        if not waiter.done():
            version = self._parser.get_http_version()
            waiter.set_result(
                Response(
                    self._status,
                    f"HTTP/{version}",
                    list(self._headers),
                    bytes(self._body),
                    truncated,
                    time.monotonic() - self._started,
                )
            )

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._timer.cancel()
            if not waiter.done():
                waiter.set_exception(error)

    # --- httptools' callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None:  # a second answer to one request: the connection is not to be trusted
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._waiter is None:
            return
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self._headers) >= MAX_HEADERS:
            self._problem = f"The response's headers are larger than {MAX_HEADER_BYTES:,} bytes or {MAX_HEADERS}."
            raise ProtocolError(self._problem)
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._status < 200:
            return  # an interim answer (100 Continue): the response follows
        self._headers_done = True
        names = {name.lower() for name, _ in self._headers}
        self._until_close = "content-length" not in names and "transfer-encoding" not in names
        if self._head_only:
            self._finish(reusable=False)  # no body follows, whatever the headers say

    def on_body(self, body: bytes) -> None:
        if self._waiter is None:
            return
        room = self._limit - len(self._body)
        if len(body) > room:
            self._body += body[:room]
            self._finish(reusable=False, truncated=True)
            self.close()  # the rest is not read
        else:
            self._body += body

    def on_message_complete(self) -> None:
        if self._status < 200:  # the interim answer ended; start again for the real one
            self._headers, self._header_bytes = [], 0
            return
        self._finish(reusable=self._parser.should_keep_alive())


class Pool:
    """Idle kept-alive connections by destination, the most recently used first."""

    def __init__(self, keepalive_seconds: float, max_idle: int) -> None:
        self.keepalive_seconds = keepalive_seconds
        self.max_idle = max_idle  # idle connections kept in all, whatever their destinations
        self._idle: dict[tuple, deque[Connection]] = {}
        self._count = 0

    def take(self, key: tuple) -> Connection | None:
        """An idle connection to `key` that is still open and not too old, or None."""
        idle = self._idle.get(key)
        oldest = time.monotonic() - self.keepalive_seconds
        while idle:
            connection = idle.pop()
            self._count -= 1
            if connection.usable and connection.idle_since > oldest:
                return connection
            connection.close()
        return None

    def give(self, key: tuple, connection: Connection) -> None:
        """Keep `connection` for the next request to `key` when it may be reused; close it otherwise."""
        if not connection.reusable or not connection.usable or self._count >= self.max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.setdefault(key, deque()).append(connection)
        self._count += 1

    def sweep(self) -> None:
        """Close the connections idle longer than the keep-alive time, and forget empty destinations."""
        oldest = time.monotonic() - self.keepalive_seconds
        for key in list(self._idle):
            kept = deque(c for c in self._idle[key] if c.usable and c.idle_since > oldest)
            for connection in self._idle[key]:
                if connection not in kept:
                    connection.close()
            self._count -= len(self._idle[key]) - len(kept)
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]

    def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        self._count = 0
