"""Which addresses outbound requests to user-given URLs may reach (the SSRF guard's policy).

What the standard library does not call global (loopback, private, link-local with the
cloud metadata address, unique-local, ...), carrier-grade NAT and the other ranges in
BLOCKED_NETWORKS are refused unless inside OUTBOUND_ALLOWED_NETWORKS; an IPv6 address
that carries an IPv4 one (mapped, compatible, translated, NAT64, 6to4, Teredo) is
refused, and the IPv4 address it carries is judged as well. `core.outbound` applies
the policy to every address it connects to.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The address policy is the standard library's classification (an address it does not call
# global, or flags as private, loopback, link-local, multicast, reserved, unspecified or
# site-local, is refused) together with the ranges below. Some of these it calls global
# (in Python 3.11: 100.64.0.0/10 is only "not global", ::/96, ::ffff:0:0:0/96, NAT64, 6to4,
# 192.88.99.0/24, fec0::/10, 3fff::/20); each is named, most specific first, so that a refusal
# says what the address is. IPv6 forms that carry an IPv4 address are refused as such, and the
# IPv4 address they carry is judged too (it decides when the operator allows the IPv6 form).
BLOCKED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("169.254.169.254/32", "the cloud metadata address"),
        ("fd00:ec2::254/128", "the cloud metadata address"),
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
        ("192.88.99.0/24", "a 6to4 relay anycast address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::ffff:0:0/96", "an IPv4-mapped IPv6 address"),
        ("::ffff:0:0:0/96", "an IPv4-translated IPv6 address"),
        ("::/96", "an IPv4-compatible IPv6 address"),
        ("64:ff9b::/96", "an IPv4/IPv6 translation (NAT64) address"),
        ("64:ff9b:1::/48", "an IPv4/IPv6 translation (NAT64) address"),
        ("100::/64", "a discard-only address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("2002::/16", "a 6to4 address"),
        ("2001::/32", "a Teredo address"),
        ("5f00::/16", "a segment routing (SRv6) address"),
        ("fc00::/7", "a unique-local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)
# What the standard library says of an address, in the words of a refusal.
BLOCKED_KINDS = (
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_site_local", "a site-local address"),
    ("is_private", "a private address"),
    ("is_reserved", "a reserved address"),
)
# IPv4-compatible (:: also means 0.0.0.0), IPv4-translated and well-known NAT64: the IPv4 address is the last 32 bits.
_LOW_32_BITS = tuple(ipaddress.ip_network(network) for network in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
NAT64_PREFIX_LENGTHS = (48, 56, 64, 96)  # those RFC 6052 allows inside the local-use /48


def _nat64_ipv4(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address in `address` under a NAT64 prefix of `prefix_length` bits (RFC 6052 2.2)."""
    value = int(address)
    without_u = (value >> 64 << 56) | (value & (1 << 56) - 1)  # bits 64-71 are always zero: skip them
    start = prefix_length if prefix_length <= 64 else prefix_length - 8
    return ipaddress.IPv4Address(without_u >> (120 - start - 32) & 0xFFFFFFFF)


def embedded_ipv4(
    address: IPAddress, *, nat64_lengths: Iterable[int] = NAT64_PREFIX_LENGTHS
) -> list[tuple[str, ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4,
    Teredo server and client), each with what the IPv6 form is; empty for any other address.

    Under the local-use NAT64 prefix the translator's prefix length is the operator's choice:
    the address is read at each of `nat64_lengths`."""
    if address.version == 4:
        return []
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found = [address.ipv4_mapped]
    elif any(address in network for network in _LOW_32_BITS) and int(address) != 1:  # ::1 is only loopback
        found = [low32]
    elif address in _NAT64_LOCAL:
        found = [_nat64_ipv4(address, length) for length in nat64_lengths]
    elif address.sixtofour is not None:
        found = [address.sixtofour]
    elif address.teredo is not None:
        found = list(address.teredo)
    return [(_blocked_kind(address), ipv4) for ipv4 in dict.fromkeys(found)]


def _within(address: IPAddress, network: IPNetwork) -> bool:
    return address.version == network.version and address in network


def address_within(address: str, networks: Iterable[IPNetwork]) -> bool:
    """Whether `address` (text, e.g. a client's REMOTE_ADDR) is an IP address inside one of `networks`."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(_within(parsed, network) for network in networks)


def _blocked_kind(address: IPAddress) -> str | None:
    """What `address` is, when it is an address guarded requests may not reach."""
    for network, reason in BLOCKED_NETWORKS:
        if _within(address, network):
            return reason
    for flag, reason in BLOCKED_KINDS:
        if getattr(address, flag, False):
            return reason
    if not address.is_global:
        return "a special-purpose (non-global) address"
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
        allowed = [network for network in self.allowed_networks if _within(address, network)]
        reason = None if allowed else _blocked_kind(address)
        if reason is not None:
            return reason
        # An allowed local-use NAT64 network says the translator's prefix length; otherwise each one it may be.
        lengths = [network.prefixlen for network in allowed if network.prefixlen in NAT64_PREFIX_LENGTHS]
        for kind, ipv4 in embedded_ipv4(address, nat64_lengths=lengths or NAT64_PREFIX_LENGTHS):
            reason = self.refusal(ipv4)  # judged even when the IPv6 form is allowed
            if reason is not None:
                return f"{kind} for {ipv4}, {reason}"
        return None


def current_policy() -> AddressPolicy:
    return AddressPolicy(parse_networks(settings.OUTBOUND_ALLOWED_NETWORKS))


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells, also in the legacy forms resolvers accept (2130706433, 0x7f.1)."""
    host = host.strip("[]").removesuffix(".")  # a trailing dot only roots the name
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
