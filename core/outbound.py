"""Outbound HTTP: one event loop per process, kept-alive connections, bounded per origin.

Every request the service makes (messages to the message sender, identity lookups,
job deliveries and their callbacks) goes through this module. The requests of a
process run on one asyncio event loop (uvloop) in a thread of their own, over
kept-alive HTTP/1.1 connections (`core.http1`, responses parsed by httptools):
thousands can be in flight at once, each request costing a small fraction of the CPU
of a thread-per-request client (bench/README.md).

Two ways in:

- from async code on the engine's loop: `await outbound.request(...)`, and
  `outbound.run(coroutine)` / `outbound.submit(coroutine)` to run such code from a
  synchronous caller (a Celery task, a view) and wait for it, or not;
- one request from synchronous code: `outbound.send(...)`.

Both return an `OutboundResponse` for any HTTP status and raise an `OutboundError`
(`DestinationRefused`, `OutboundTimeout`, `OutboundConnectionError`,
`InvalidDestination`, `OriginBusy`) when no response was had.

Two kinds of destination:

- **guarded** (the default): URLs that users give (job targets, callbacks). A host
  that is a literal address is judged before anything is sent; a name is resolved
  by the engine, each address is judged by `core.addresses` and the connection goes
  only to one that passed, so a name that resolves to a private address (or starts
  to, DNS rebinding) is refused. Redirects are never followed: a 3xx is the response.
- **trusted**: URLs the operator configures (the message sender, the identity
  store). No address check.

**Fairness between peers.** At most OUTBOUND_CONCURRENCY_PER_ORIGIN requests of a
process are in flight to one origin (scheme, host, port), and at most
OUTBOUND_MAX_IN_FLIGHT in all; the rest wait for a slot, which does not count
against their timeout. A peer that hangs holds its own slots and no others: the
event loop goes on serving every other origin. A caller that must not wait long
for a busy origin passes `queue_timeout` and gets `OriginBusy` (nothing was sent).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import ssl
import threading
import time
from collections.abc import Coroutine, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, TypeVar

import certifi
from django.conf import settings
from yarl import URL

from core import __version__, http1, tracing
from core.addresses import AddressPolicy, literal_address, parse_networks

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
    uvloop = None

T = TypeVar("T")

# Bodies are read as they come off the wire (bounded), so they are asked for uncompressed.
DEFAULT_HEADERS = {"User-Agent": f"stage-based-messaging/{__version__}", "Accept-Encoding": "identity"}
KEEPALIVE_SECONDS = 30.0  # an idle connection is closed after this long
RESOLVER_THREADS = 32  # names resolved at once by a process (for guarded requests' new connections)


class OutboundError(Exception):
    """No response was had; the message says why."""


class InvalidDestination(OutboundError):
    """The URL cannot be requested (scheme, host)."""


class DestinationRefused(OutboundError):
    """The destination's address is one that guarded requests may not reach."""


class OutboundTimeout(OutboundError):
    """The destination did not answer (or finish answering) in time."""


class OutboundConnectionError(OutboundError):
    """No connection could be made, or it broke before a response."""


class OriginBusy(OutboundError):
    """The origin's requests in flight stayed at their bound for the whole `queue_timeout`: nothing was sent."""


# A response as the engine answers it: status_code, http_version, headers, body, truncated, elapsed, header().
OutboundResponse = http1.Response


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """Seconds a Retry-After header asks to wait: whole seconds, or an HTTP date (0 once it has passed).

    None when there is no header or it cannot be read (a negative or fractional number, a date
    without a zone, anything else). No limit is applied: each caller has its own.
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError, OverflowError):  # not a date, or one without a zone (naive)
        return None


async def allowed_addresses(
    host: str, port: int, policy: AddressPolicy, executor: concurrent.futures.Executor | None = None
) -> list[str]:
    """The addresses `host` resolves to that the policy allows, in the resolver's order.

    DestinationRefused when it has none: a guarded request connects to nothing else."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.run_in_executor(executor, socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise OutboundConnectionError(f"{host} does not resolve: {error.strerror}") from None
    allowed: list[str] = []
    refused = None
    for *_, sockaddr in infos:
        text = sockaddr[0].split("%", 1)[0]
        address = literal_address(text)
        reason = policy.refusal(address) if address is not None else "not an address"
        if reason is None:
            if text not in allowed:
                allowed.append(text)
        elif refused is None:
            refused = (address, reason)
    if not allowed:
        address, reason = refused
        shown = host if str(address) == host else f"{host} resolves to {address}, which"
        raise DestinationRefused(f"Refused: {shown} is {reason}.")
    return allowed


@lru_cache(maxsize=16)
def _policy(networks: tuple[str, ...]) -> AddressPolicy:
    """The address policy of guarded requests under OUTBOUND_ALLOWED_NETWORKS = `networks`."""
    return AddressPolicy(parse_networks(networks))


@lru_cache(maxsize=4096)
def _literal_refusal(host: str, networks: tuple[str, ...]) -> str | None:
    """Why a guarded request may not go to `host` when it is a literal address, or None (a name is
    judged when it is resolved)."""
    address = literal_address(host)
    if address is None:
        return None
    reason = _policy(networks).refusal(address)
    return None if reason is None else f"Refused: {address} is {reason}."


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """Certificate checks against certifi's CAs, loaded once and shared by every connection."""
    return ssl.create_default_context(cafile=certifi.where())


@lru_cache(maxsize=4096)
def _parse(url: str) -> URL:
    """The URL as it will be requested; InvalidDestination when it is not one that can be.

    A URL holding whitespace or a control character is refused rather than cleaned (a parser
    drops a line break inside a host, which would join two names into another)."""
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise InvalidDestination(f"{url!r} holds whitespace or a control character: escape it (%20, ...).")
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as error:
        raise InvalidDestination(f"{url!r} is not a valid URL: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise InvalidDestination(f"{url!r} is not an http or https URL with a host.")
    return parsed


class _Gate:
    """A bound on requests in flight (to one origin, or in all); `users` counts holders and waiters."""

    __slots__ = ("semaphore", "users")

    def __init__(self, size: int):
        self.semaphore = asyncio.Semaphore(size)
        self.users = 0


# Each bound on requests in flight: its size, the setting that gives it, and whose requests it counts.
_BOUNDS = {
    "origin": (lambda: settings.OUTBOUND_CONCURRENCY_PER_ORIGIN, "OUTBOUND_CONCURRENCY_PER_ORIGIN", "{host}:{port}"),
    "owner": (lambda: settings.OUTBOUND_CONCURRENCY_PER_OWNER, "OUTBOUND_CONCURRENCY_PER_OWNER", "its owner"),
    "all": (lambda: settings.OUTBOUND_MAX_IN_FLIGHT, "OUTBOUND_MAX_IN_FLIGHT", "this process"),
}


class Engine:
    """A process's outbound requests: an event loop in a thread of its own, its idle connections and gates.

    Made anew in a forked child (a child must not use its parent's loop or sockets)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pool = http1.Pool(KEEPALIVE_SECONDS, settings.OUTBOUND_MAX_IN_FLIGHT)
        self._gates: dict[tuple, _Gate] = {}  # by origin, by owner, and one for each kind of request
        self._lookups: dict[tuple, asyncio.Future] = {}
        self._resolver: concurrent.futures.ThreadPoolExecutor | None = None
        os.register_at_fork(after_in_child=self._forget_parent)

    def _forget_parent(self) -> None:
        """In a forked child: none of the parent's loop, threads, connections or locks is ours."""
        self._lock = threading.Lock()
        self._loop = self._thread = self._resolver = None

    # --- the loop ---------------------------------------------------------------

    def loop(self) -> asyncio.AbstractEventLoop:
        """The engine's running loop, started on first use in this process."""
        with self._lock:
            if self._loop is None:
                # A parent's connections and lookups are not ours to use.
                self._pool = http1.Pool(KEEPALIVE_SECONDS, settings.OUTBOUND_MAX_IN_FLIGHT)
                self._gates, self._lookups = {}, {}
                self._resolver = concurrent.futures.ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="resolve")
                loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(target=self._run_loop, args=(loop, started), name="outbound", daemon=True)
                thread.start()  # when this fails, nothing is kept: the next use tries again
                started.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.call_later(KEEPALIVE_SECONDS, self._sweep, loop)
        loop.run_forever()

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close connections idle past the keep-alive time, every KEEPALIVE_SECONDS."""
        self._pool.sweep()
        loop.call_later(KEEPALIVE_SECONDS, self._sweep, loop)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coroutine` on the engine's loop; its future (to wait for, or not)."""
        return asyncio.run_coroutine_threadsafe(tracing.carried(coroutine), self.loop())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the engine's loop and wait for its result (from any thread but the loop's)."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("outbound.run() waits for the engine's loop: from inside it, await instead.")
        return self.submit(coroutine).result()

    def close(self) -> None:
        """Close every connection and stop the loop; the next use starts afresh."""
        with self._lock:
            loop, thread, pool, resolver = self._loop, self._thread, self._pool, self._resolver
            self._loop = self._thread = self._resolver = None
        if loop is None:
            return
        resolver.shutdown(wait=False)
        try:
            loop.call_soon_threadsafe(pool.close)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=10)
            if not loop.is_running():
                loop.close()

    # --- on the loop ------------------------------------------------------------

    async def exchange(
        self,
        method: str,
        target: URL,
        head: bytes,
        body: bytes | None,
        *,
        trusted: bool,
        limit: int,
        deadline: float,
        started: float,
    ) -> http1.Response:
        """Send the request on a kept-alive connection to the target (or a new one) and read the answer.

        A kept-alive connection the peer had closed is replaced by a new one, and an idempotent
        request sent again on it, when nothing had come back on the old one."""
        networks = () if trusted else tuple(settings.OUTBOUND_ALLOWED_NETWORKS)
        key = (target.scheme, target.raw_host, target.port, trusted, networks)
        connection = self._pool.take(key)
        while True:
            reused = connection is not None
            if connection is None:
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect(target, None if trusted else _policy(networks))
            try:
                response = await connection.exchange(
                    head, body, limit=limit, deadline=deadline, started=started, head_only=method == "HEAD"
                )
            except http1.ConnectionClosed:
                if reused and not connection.received_any and method in http1.IDEMPOTENT_METHODS:
                    connection = None
                    continue
                raise
            except BaseException:  # cancelled (the timeout), or unreadable: the exchange is abandoned
                connection.close()
                raise
            self._pool.give(key, connection)
            return response

    async def _connect(self, target: URL, policy: AddressPolicy | None) -> http1.Connection:
        """A new connection to the target; for a guarded request, only to an address the policy allows."""
        host, port = target.raw_host, target.port
        addresses = [host] if policy is None else await self.addresses(host, port, policy)
        tls = _ssl_context() if target.scheme == "https" else None
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for address in addresses:
            try:
                _, connection = await loop.create_connection(
                    http1.Connection, address, port, ssl=tls, server_hostname=host if tls else None
                )
                return connection
            except OSError as failure:
                error = failure
        raise OutboundConnectionError(f"Cannot connect to {host}:{port}: {error}")

    async def addresses(self, host: str, port: int, policy: AddressPolicy) -> list[str]:
        """`allowed_addresses`, on the engine's own resolver threads; requests that need the same
        name at once share one lookup (a name that never answers holds one thread, not many)."""
        key = (host, port, policy)
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = asyncio.ensure_future(allowed_addresses(host, port, policy, self._resolver))
            lookup.add_done_callback(lambda _: self._lookups.pop(key, None))
        return await asyncio.shield(lookup)

    def _gate(self, key: tuple, size: int) -> _Gate:
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate(size)
        gate.users += 1
        return gate

    def _let_go(self, key: tuple, gate: _Gate) -> None:
        gate.users -= 1
        if gate.users == 0:
            self._gates.pop(key, None)  # no origin or owner is remembered once nothing uses it

    async def slot(
        self, *, trusted: bool, scheme: str, host: str, port: int, owner: Any, queue_timeout: float | None
    ) -> list[tuple[tuple, _Gate]]:
        """Wait for a slot of the origin, of the owner (when given) and of the process for the request's
        kind (trusted or guarded), in that order; OriginBusy, naming the bound, after `queue_timeout`."""
        keys = [("origin", trusted, scheme, host, port), ("all", trusted)]
        if owner is not None:
            keys.insert(1, ("owner", owner))
        gates = [(key, self._gate(key, _BOUNDS[key[0]][0]())) for key in keys]
        held: list[_Gate] = []
        waiting_for: tuple = ()
        try:
            if any(gate.semaphore.locked() for _, gate in gates):
                async with asyncio.timeout(queue_timeout):
                    for key, gate in gates:
                        waiting_for = key
                        await gate.semaphore.acquire()
                        held.append(gate)
            else:  # every one free: taken at once, without a timer
                for _, gate in gates:
                    await gate.semaphore.acquire()
                    held.append(gate)
        except BaseException as error:
            for gate in held:
                gate.semaphore.release()
            for key, gate in gates:
                self._let_go(key, gate)
            if isinstance(error, TimeoutError):
                size, setting, whose = _BOUNDS[waiting_for[0]]
                busy = whose.format(host=host, port=port)
                raise OriginBusy(
                    f"{busy} had {size()} requests in flight ({setting}) for {queue_timeout:g} s; "
                    "this one was not sent."
                ) from None
            raise
        return gates

    def release(self, gates: list[tuple[tuple, _Gate]]) -> None:
        for key, gate in gates:
            gate.semaphore.release()
            self._let_go(key, gate)


_engine = Engine()


def submit(coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run `coroutine` (which may await `request`) on this process's outbound loop; its future."""
    return _engine.submit(coroutine)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on this process's outbound loop and wait for its result."""
    return _engine.run(coroutine)


def close_clients() -> None:
    """Close this process's connections and stop its loop (tests, shutdown); they are made anew when needed."""
    _engine.close()


async def request(
    method: str, url: str, *, headers: Mapping[str, str] | None = None, **options: Any
) -> OutboundResponse:
    """Make one request (`_request`), traced when tracing is on: a CLIENT span, its context sent to the peer
    in a `traceparent` header."""
    with tracing.client_span(method, url) as span:
        response = await _request(method, url, headers=span.with_headers(headers), **options)
        span.answered(response.status_code)
        return response


async def _request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = 10.0,
    max_response_bytes: int = 65_536,
    trusted: bool = False,
    queue_timeout: float | None = None,
    owner: Any = None,
) -> OutboundResponse:
    """Make one request (on the engine's loop) and read at most `max_response_bytes` of the response body.

    `timeout` bounds the whole exchange from the moment the origin has a free slot;
    `queue_timeout` bounds the wait for that slot (None: as long as it takes). `owner` (whose
    request it is, e.g. a job's owner) has its own bound, OUTBOUND_CONCURRENCY_PER_OWNER, so that
    one user's many origins cannot take the whole process.
    Redirects are not followed; no cookies are kept.
    """
    target = _parse(url)
    if not trusted:
        refusal = _literal_refusal(target.raw_host, tuple(settings.OUTBOUND_ALLOWED_NETWORKS))
        if refusal is not None:
            raise DestinationRefused(refusal)
    given = {name.lower() for name in headers or ()}
    request_headers = [(name, value) for name, value in DEFAULT_HEADERS.items() if name.lower() not in given]
    request_headers += list((headers or {}).items())
    length = len(content) if content else (0 if method in http1.BODY_METHODS else None)
    try:
        head = http1.request_head(method, target, request_headers, length)
    except http1.RequestNotSendable as error:
        raise InvalidDestination(f"The request cannot be sent: {error}") from None
    gates = await _engine.slot(
        trusted=trusted,
        scheme=target.scheme,
        host=target.raw_host,
        port=target.port,
        owner=owner,
        queue_timeout=queue_timeout,
    )
    started = time.monotonic()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        return await _engine.exchange(
            method,
            target,
            head,
            content,
            trusted=trusted,
            limit=max_response_bytes,
            deadline=deadline,
            started=started,
        )
    except TimeoutError:
        raise OutboundTimeout(f"No answer within {timeout:g} s.") from None
    except (http1.ConnectionClosed, http1.ProtocolError) as error:
        raise OutboundConnectionError(str(error)) from None
    except OSError as error:
        raise OutboundConnectionError(str(error) or type(error).__name__) from None
    finally:
        _engine.release(gates)


def send(method: str, url: str, **options: Any) -> OutboundResponse:
    """`request` (same arguments), from synchronous code: made on the engine's loop, waited for here."""
    return run(request(method, url, **options))
