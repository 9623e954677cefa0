"""Outbound HTTP: keep-alive connection pools, bounded reading, timeouts.

Requests go through httpcore (the connection layer of httpx; URLs are parsed and TLS
is set up as httpx does), which costs about half of httpx's client per request.

Two kinds of destination:

- **guarded** (the default): URLs that users give (job targets, callbacks). The host
  is resolved when a connection is opened, every address is checked, and the
  connection goes to an address that passed the check, so a name that resolves to
  a private address (or starts to, DNS rebinding) is refused. Redirects are never
  followed: a 3xx is the response. Loopback, private, link-local (169.254.0.0/16,
  the cloud metadata address), carrier-grade NAT, unique-local, IPv4-mapped and
  other special-purpose addresses are refused unless inside
  OUTBOUND_ALLOWED_NETWORKS.
- **trusted**: URLs that the operator configures (the message sender, the identity
  store). No address check.

    response = outbound.send("POST", url, content=b"...", headers={...}, timeout=10)
    response = outbound.send("POST", url, ..., trusted=True)

`send` returns an `OutboundResponse` for any HTTP status and raises an
`OutboundError` (`DestinationRefused`, `OutboundTimeout`, `OutboundConnectionError`,
`InvalidDestination`) when no response was had. `retry_after_seconds` reads the
wait a peer asks for; each caller decides what to do with a long one.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from core import __version__

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused destinations, most specific first, each with what it is.
BLOCKED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("169.254.169.254/32", "the cloud metadata address"),
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("169.254.0.0/16", "a link-local address"),
        ("100.64.0.0/10", "a carrier-grade NAT (CGNAT) address"),
        ("192.0.0.0/24", "an IETF protocol assignment address"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::ffff:0:0/96", "an IPv4-mapped IPv6 address"),
        ("64:ff9b::/96", "an IPv4/IPv6 translation (NAT64) address"),
        ("64:ff9b:1::/48", "an IPv4/IPv6 translation (NAT64) address"),
        ("100::/64", "a discard-only address"),
        ("2001:db8::/32", "a documentation address"),
        ("2002::/16", "a 6to4 address"),
        ("2001::/32", "a Teredo address"),
        ("fc00::/7", "a unique-local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)


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


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    http_version: str  # "HTTP/1.1"
    headers: list[tuple[str, str]]
    body: bytes  # at most `max_response_bytes` of it
    truncated: bool  # whether the body went on past what was read
    elapsed: float  # seconds from sending to the end of reading

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


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


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) as networks; ValueError naming a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{value!r} is not a network: write it as an address or a CIDR, e.g. 127.0.0.0/8."
            ) from None
    return tuple(networks)


class AddressPolicy:
    """Which addresses guarded requests may reach."""

    def __init__(self, allowed_networks: Iterable[IPNetwork] = ()):
        self.allowed_networks = tuple(allowed_networks)

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` may not be reached, or None when it may."""
        if any(address.version == network.version and address in network for network in self.allowed_networks):
            return None
        for network, reason in BLOCKED_NETWORKS:
            if address.version == network.version and address in network:
                return reason
        if not address.is_global:
            return "a special-purpose (non-global) address"
        return None


def current_policy() -> AddressPolicy:
    return AddressPolicy(parse_networks(settings.OUTBOUND_ALLOWED_NETWORKS))


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells, also in the legacy forms resolvers accept (2130706433, 0x7f.1)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(char in "0123456789abcdefxABCDEFX." for char in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refusal_for_url(url: str, *, policy: AddressPolicy | None = None) -> str | None:
    """Why a guarded request to `url` is refused without resolving any name, or None.

    Only a host that is a literal address can be judged here; a name is checked
    when a connection is opened.
    """
    host = urlsplit(url).hostname or ""
    address = literal_address(host)
    if address is None:
        return None
    reason = (policy or current_policy()).refusal(address)
    return None if reason is None else f"{address} is {reason}"


class _GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself and connects only to an address the policy allows."""

    def __init__(self, policy: AddressPolicy):
        self.policy = policy

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise httpcore.ConnectError(f"{host} does not resolve: {error.strerror}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
        allowed = [address for address in addresses if self.policy.refusal(address) is None]
        if not allowed:
            address = addresses[0]
            shown = host if str(address) == host else f"{host} resolves to {address}, which"
            raise DestinationRefused(f"Refused: {shown} is {self.policy.refusal(address)}.")
        error: Exception | None = None
        for address in allowed:
            try:
                stream = super().connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as connect_error:
                error = connect_error
                continue
            peer = ipaddress.ip_address(stream.get_extra_info("socket").getpeername()[0].split("%", 1)[0])
            if self.policy.refusal(peer) is not None:  # the address actually connected to
                stream.close()
                raise DestinationRefused(f"Refused: {host} connected to {peer}, which is {self.policy.refusal(peer)}.")
            return stream
        raise error


# Each thread has its own pools (one pool shared by many threads costs more per request than
# the request itself), keyed by process id (never shared across a fork), generation, trusted, networks.
_local = threading.local()
_every_pool: list[tuple[int, httpcore.ConnectionPool]] = []
_every_pool_lock = threading.Lock()
_generation = 0  # moves on when the pools are closed, so that no thread uses a closed one
MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 20
KEEPALIVE_SECONDS = 30.0
# Bodies are read as they come off the wire (bounded), so they are asked for uncompressed.
DEFAULT_HEADERS = {"user-agent": f"stage-based-messaging/{__version__}", "accept-encoding": "identity"}


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """The TLS settings httpx uses (certifi's CAs), loaded once and shared by every pool."""
    return httpx.create_ssl_context(trust_env=False)


def _pool(*, trusted: bool) -> httpcore.ConnectionPool:
    """This thread's keep-alive pool for guarded (default) or trusted destinations."""
    networks = () if trusted else tuple(settings.OUTBOUND_ALLOWED_NETWORKS)
    key = (os.getpid(), _generation, trusted, networks)
    pools = getattr(_local, "pools", None)
    if pools is None:
        pools = _local.pools = {}
    pool = pools.get(key)
    if pool is None:
        backend = None if trusted else _GuardedBackend(AddressPolicy(parse_networks(networks)))
        pool = pools[key] = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_SECONDS,
            network_backend=backend,
        )
        with _every_pool_lock:
            _every_pool.append((os.getpid(), pool))
    return pool


def close_clients() -> None:
    """Close every pool of this process, in every thread (tests, shutdown); they are made anew when needed."""
    global _generation
    with _every_pool_lock:
        _generation += 1
        for pid, pool in _every_pool:
            if pid == os.getpid():
                pool.close()
        _every_pool.clear()


@lru_cache(maxsize=4096)
def _parse(url: str) -> httpcore.URL:
    """The URL as the connection pool takes it (host IDNA-encoded); InvalidDestination when it is not one."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as error:
        raise InvalidDestination(f"{url!r} is not a valid URL: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidDestination(f"{url!r} is not an http or https URL with a host.")
    return httpcore.URL(scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path)


def send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = 10.0,
    max_response_bytes: int = 65_536,
    trusted: bool = False,
) -> OutboundResponse:
    """Make one request and read at most `max_response_bytes` of the response body.

    `timeout` bounds connecting, each read and write, and the whole exchange.
    Redirects are not followed; no cookies are kept.
    """
    target = _parse(url)
    given = {name.lower() for name in headers or ()}
    request_headers = [(name, value) for name, value in DEFAULT_HEADERS.items() if name not in given]
    request_headers += list((headers or {}).items())
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    started = time.monotonic()
    deadline = started + timeout
    try:
        with _pool(trusted=trusted).stream(
            method, target, headers=request_headers, content=content, extensions={"timeout": limits}
        ) as response:
            body, truncated = bytearray(), False
            for chunk in response.iter_stream():
                body += chunk
                if len(body) > max_response_bytes:
                    del body[max_response_bytes:]
                    truncated = True
                    break
                if time.monotonic() > deadline:
                    raise OutboundTimeout(f"The response did not finish within {timeout:g} s.")
            return OutboundResponse(
                status_code=response.status,
                http_version=response.extensions.get("http_version", b"HTTP/1.1").decode("ascii"),
                headers=[(key.decode("latin-1"), value.decode("latin-1")) for key, value in response.headers],
                body=bytes(body),
                truncated=truncated,
                elapsed=time.monotonic() - started,
            )
    except httpcore.TimeoutException as error:
        raise OutboundTimeout(f"No answer within {timeout:g} s ({type(error).__name__}).") from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as error:
        raise OutboundConnectionError(str(error) or type(error).__name__) from None
