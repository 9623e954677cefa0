"""The SSRF policy of guarded outbound requests: every address form that reaches an internal host is refused.

The policy is judged on its own (every IPv6 form that carries an IPv4 address, the legacy IPv4
spellings, the standard library's classification) and at connect time through `outbound.send`,
which resolves names itself. Only loopback is ever connected to here.
"""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import addresses, outbound

INTERNAL_IPV4 = ["127.0.0.1", "10.0.0.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "192.168.1.1", "224.0.0.1"]  # noqa: S104


def ipv6_forms(ipv4: str) -> dict[str, str]:
    """Every IPv6 form that carries `ipv4`, written out independently of the code under test."""
    value = int(ipaddress.IPv4Address(ipv4))
    high, low = value >> 16, value & 0xFFFF
    obfuscated = value ^ 0xFFFFFFFF
    forms = {
        "IPv4-mapped": f"::ffff:{ipv4}",
        "IPv4-compatible": f"::{ipv4}",
        "IPv4-translated": f"::ffff:0:{ipv4}",
        "NAT64 well-known": f"64:ff9b::{ipv4}",
        "NAT64 local /96": f"64:ff9b:1::{ipv4}",
        # RFC 6052 2.2: the IPv4 bits go around bits 64-71 (the "u" octet), which stay zero.
        "NAT64 local /48": f"64:ff9b:1:{high:x}:{low >> 8:x}:{(low & 0xFF) << 8:x}::",
        "NAT64 local /56": f"64:ff9b:1:{value >> 24:x}:{(value >> 16) & 0xFF:x}:{low:x}::",
        "NAT64 local /64": f"64:ff9b:1:0:{value >> 24:x}:{(value >> 8) & 0xFFFF:x}:{(value & 0xFF) << 8:x}::",
        "6to4": f"2002:{high:x}:{low:x}::1",
        "Teredo client": f"2001:0:4136:e378:8000:63bf:{obfuscated >> 16:x}:{obfuscated & 0xFFFF:x}",
        "Teredo server": f"2001:0:{high:x}:{low:x}:8000:63bf:3fff:fdd2",
    }
    return {kind: str(ipaddress.IPv6Address(address)) for kind, address in forms.items()}


EMBEDDED_CASES = [
    pytest.param(address, ipv4, id=f"{kind} of {ipv4}")
    for ipv4 in INTERNAL_IPV4
    for kind, address in ipv6_forms(ipv4).items()
]


def refusal(address: str, allowed: list[str] = ()) -> str | None:
    return addresses.AddressPolicy(addresses.parse_networks(allowed)).refusal(ipaddress.ip_address(address))


@pytest.mark.parametrize(("address", "ipv4"), EMBEDDED_CASES)
def test_every_ipv6_form_carrying_an_internal_ipv4_address_is_refused(address, ipv4):
    assert refusal(address) is not None


@pytest.mark.parametrize(("address", "ipv4"), EMBEDDED_CASES)
def test_the_carried_ipv4_address_is_judged_even_when_the_ipv6_form_is_allowed(address, ipv4):
    carried = [carried for _, carried in addresses.embedded_ipv4(ipaddress.ip_address(address))]
    assert ipaddress.IPv4Address(ipv4) in carried
    reason = refusal(address, ["::/0"])
    assert reason is not None
    assert " for " in reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::7f00:1", "an IPv4-compatible IPv6 address"),
        ("::ffff:0:7f00:1", "an IPv4-translated IPv6 address"),
        ("::ffff:7f00:1", "an IPv4-mapped IPv6 address"),
        ("64:ff9b::7f00:1", "an IPv4/IPv6 translation (NAT64) address"),
        ("2002:7f00:1::1", "a 6to4 address"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a Teredo address"),
        ("::", "an unspecified address"),
        ("::1", "a loopback address"),
        ("fec0::1", "a site-local address"),
        ("ff0e::1", "a multicast address"),
        ("3fff::1", "a documentation address"),
        ("192.88.99.1", "a 6to4 relay anycast address"),
        ("fd00:ec2::254", "the cloud metadata address"),
    ],
)
def test_a_refusal_says_what_the_address_is(address, reason):
    assert refusal(address) == reason


def test_an_allowed_ipv6_form_names_the_internal_address_it_carries():
    assert refusal("::7f00:1", ["::/96"]) == "an IPv4-compatible IPv6 address for 127.0.0.1, a loopback address"


def test_an_allowed_ipv6_form_carrying_an_allowed_ipv4_address_is_reachable():
    assert refusal("::ffff:127.0.0.1", ["::ffff:0:0/96", "127.0.0.0/8"]) is None
    assert refusal("::ffff:127.0.0.1", ["127.0.0.0/8"]) == "an IPv4-mapped IPv6 address"


@pytest.mark.parametrize("kind", ["IPv4-mapped", "IPv4-compatible", "NAT64 well-known", "6to4"])
def test_an_allowed_ipv6_form_carrying_a_public_address_is_reachable(kind):
    assert refusal(ipv6_forms("8.8.8.8")[kind], ["::/0"]) is None


def test_an_allowed_local_nat64_prefix_is_read_at_its_own_length():
    # 64:ff9b:1::808:808 under a /96 translator is 8.8.8.8; read as a /64 it would be 0.0.0.8.
    assert refusal("64:ff9b:1::808:808", ["64:ff9b:1::/96"]) is None
    assert refusal("64:ff9b:1::808:808", ["64:ff9b:1::/48"]) is not None  # a /48 translator: 0.0.0.0
    assert refusal("64:ff9b:1::7f00:1", ["64:ff9b:1::/96"]) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::200e"])
def test_public_addresses_are_reachable(address):
    assert refusal(address) is None


FLAGS = ("is_private", "is_loopback", "is_link_local", "is_multicast", "is_reserved", "is_unspecified", "is_site_local")


@given(st.ip_addresses())
def test_nothing_the_standard_library_calls_special_is_reachable(address):
    if refusal(str(address)) is None:
        assert address.is_global
        assert not any(getattr(address, flag, False) for flag in FLAGS)
        for _, ipv4 in addresses.embedded_ipv4(address):
            assert refusal(str(ipv4)) is None


@given(st.sampled_from(addresses.BLOCKED_NETWORKS).flatmap(lambda entry: st.ip_addresses(network=entry[0])))
def test_every_named_range_is_refused(address):
    assert refusal(str(address)) is not None


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f.1", "0177.0.0.1", "0x7F000001", "017700000001", "127.1", "0", "127.0.0.1.", "0x7f.0.0.0x1"],
)
def test_legacy_ipv4_spellings_are_read_as_the_address_they_spell(host):
    assert addresses.refusal_for_url(f"http://{host}:8080/", policy=addresses.AddressPolicy()) is not None


@pytest.mark.parametrize(
    "host",
    [
        "[::7f00:1]",
        "[::127.0.0.1]",
        "[0:0:0:0:0:0:7F00:0001]",
        "[::ffff:0:7f00:1]",
        "[::ffff:0:127.0.0.1]",
        "[0000::ffff:0000:7f00:0001]",
        "[64:ff9b::127.0.0.1]",
        "[2002:7f00:1::]",
        "[fe80::1%25eth0]",
    ],
)
def test_ipv6_spellings_in_a_url_are_refused_without_connecting(host):
    assert addresses.refusal_for_url(f"http://{host}:8080/", policy=addresses.AddressPolicy()) is not None


@pytest.fixture
def listener(http_server):
    """A real server on loopback; the tests check it is never asked anything."""
    http_server.reset()
    http_server.expect_request("/hook").respond_with_data("reached")
    yield http_server
    http_server.reset()
    outbound.close_clients()


def reached(server) -> bool:
    return any(request.path == "/hook" for request, _ in list(server.log))


@pytest.mark.parametrize(
    "host",
    ["[::7f00:1]", "[::ffff:0:7f00:1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "0x7f.1", "2130706433", "localhost"],
)
def test_a_guarded_request_to_an_internal_host_is_refused_at_connect_time(listener, settings, host):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(outbound.DestinationRefused, match=r"^Refused: "):
        outbound.send("GET", f"http://{host}:{listener.port}/hook", timeout=5)
    assert not reached(listener)


def test_at_connect_time_an_allowed_ipv6_form_still_needs_its_ipv4_address_allowed(listener, settings):
    url = f"http://[::ffff:127.0.0.1]:{listener.port}/hook"
    settings.OUTBOUND_ALLOWED_NETWORKS = ["::/0"]
    with pytest.raises(outbound.DestinationRefused, match=r"an IPv4-mapped IPv6 address for 127\.0\.0\.1, a loopback"):
        outbound.send("GET", url, timeout=5)
    assert not reached(listener)
    settings.OUTBOUND_ALLOWED_NETWORKS = ["::/0", "127.0.0.0/8"]
    assert outbound.send("GET", url, timeout=5).body == b"reached"
