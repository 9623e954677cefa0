"""Jobs may not reach internal addresses: refused at creation for a literal address, at send time otherwise.

Only loopback is ever connected to here (and only when the test allows it).
"""

import ipaddress

import pytest

from core import addresses
from jobs.models import AttemptOutcome, Job, JobState

from .helpers import make_job, requests_to

pytestmark = pytest.mark.django_db


@pytest.fixture
def nothing_allowed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("127.8.9.10", "127.8.9.10 is a loopback address"),
        ("10.1.2.3", "10.1.2.3 is a private address"),
        ("172.16.5.4", "172.16.5.4 is a private address"),
        ("192.168.0.10", "192.168.0.10 is a private address"),
        ("169.254.169.254", "169.254.169.254 is the cloud metadata address"),
        ("169.254.10.20", "169.254.10.20 is a link-local address"),
        ("100.64.0.1", "100.64.0.1 is a carrier-grade NAT (CGNAT) address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified ('this network') address"),  # noqa: S104 - the address under test
        ("[::1]", "::1 is a loopback address"),
        ("[fd12:3456::1]", "fd12:3456::1 is a unique-local address"),
        ("[fe80::1]", "fe80::1 is a link-local address"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1 is an IPv4-mapped IPv6 address"),
        ("[::ffff:10.0.0.1]", "::ffff:a00:1 is an IPv4-mapped IPv6 address"),
        ("2130706433", "127.0.0.1 is a loopback address"),
        ("0x7f.1", "127.0.0.1 is a loopback address"),
        ("017700000001", "127.0.0.1 is a loopback address"),
        ("127.1", "127.0.0.1 is a loopback address"),
        ("127.0.0.1.", "127.0.0.1 is a loopback address"),
        ("0", "0.0.0.0 is an unspecified ('this network') address"),
        ("[::7f00:1]", "::7f00:1 is an IPv4-compatible IPv6 address"),
        ("[::127.0.0.1]", "::7f00:1 is an IPv4-compatible IPv6 address"),
        ("[::ffff:0:7f00:1]", "::ffff:0:7f00:1 is an IPv4-translated IPv6 address"),
        ("[::ffff:0:169.254.169.254]", "::ffff:0:a9fe:a9fe is an IPv4-translated IPv6 address"),
        ("[64:ff9b::10.0.0.1]", "64:ff9b::a00:1 is an IPv4/IPv6 translation (NAT64) address"),
        ("[2002:a9fe:a9fe::1]", "2002:a9fe:a9fe::1 is a 6to4 address"),
        ("[fec0::1]", "fec0::1 is a site-local address"),
        ("[ff02::1]", "ff02::1 is a multicast address"),
    ],
)
def test_a_literal_internal_address_is_refused_at_creation_naming_why(owner, jobs_api, nothing_allowed, host, reason):
    _, key = owner
    response = jobs_api.post("/jobs.json", {"job[uri]": f"http://{host}:8080/hook", "apikey": key})
    assert response.status_code == 400, response.content
    assert response.json() == {
        "error": {
            "uri": f"Refused: {reason}, which jobs may not reach. Use a public address "
            "(the operator can exempt networks with OUTBOUND_ALLOWED_NETWORKS)."
        }
    }
    assert not Job.objects.exists()


@pytest.mark.parametrize("host", ["0177.0.0.1", "127.000.000.001", "[::ffff:127.0.0.1%25lo]"])
def test_an_internal_address_in_a_spelling_the_sender_cannot_read_is_refused_at_creation(
    owner, jobs_api, nothing_allowed, host
):
    _, key = owner
    response = jobs_api.post("/jobs.json", {"job[uri]": f"http://{host}:8080/hook", "apikey": key})
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]) == ["uri"]
    assert not Job.objects.exists()


@pytest.mark.parametrize("field", ["callback_uri", "failure_callback_uri"])
def test_a_callback_to_an_internal_address_is_refused_at_creation(owner, jobs_api, nothing_allowed, field):
    _, key = owner
    response = jobs_api.post(
        "/jobs.json", {"job[uri]": "https://example.org/", f"job[{field}]": "http://169.254.169.254/", "apikey": key}
    )
    assert response.status_code == 400
    assert list(response.json()["error"]) == [field]


def test_an_update_to_an_internal_address_is_refused(owner, jobs_api, nothing_allowed):
    user, key = owner
    job = make_job(user, "https://example.org/hook")
    response = jobs_api.put(f"/jobs/{job.pk}.json?apikey={key}&job[uri]=http://10.0.0.1/")
    assert response.status_code == 400
    assert Job.objects.get(pk=job.pk).uri == job.uri


def test_a_name_that_resolves_to_loopback_is_refused_at_send_time(owner, target, run_due, nothing_allowed):
    user, _ = owner
    target.expect_request("/hook").respond_with_data("should never be reached")
    job = make_job(user, target.url_for("/hook").replace("127.0.0.1", "localhost"))
    run_due()
    job.refresh_from_db()
    assert job.state == JobState.FAILED  # a refusal is not retried
    [attempt] = job.attempts.all()
    assert attempt.outcome == AttemptOutcome.REFUSED
    assert attempt.error.startswith("Refused: localhost resolves to ")
    assert attempt.error.endswith("which is a loopback address.")
    assert requests_to(target, "/hook") == []


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1", "[::7f00:1]", "[::ffff:0:7f00:1]"]
)
def test_an_internal_address_that_got_past_creation_is_refused_at_send_time(owner, target, run_due, settings, host):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::/0"]  # while the job is created
    user, _ = owner
    target.expect_request("/hook").respond_with_data("should never be reached")
    job = make_job(user, f"http://{host}:{target.port}/hook")
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    run_due()
    [attempt] = Job.objects.get(pk=job.pk).attempts.all()
    assert attempt.outcome == AttemptOutcome.REFUSED
    assert attempt.error.startswith("Refused: ")
    assert requests_to(target, "/hook") == []


def test_an_allowed_ipv6_form_does_not_let_a_job_reach_the_internal_address_it_carries(owner, jobs_api, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["::/0"]
    _, key = owner
    response = jobs_api.post("/jobs.json", {"job[uri]": "http://[::ffff:0:10.0.0.1]/hook", "apikey": key})
    assert response.status_code == 400
    assert response.json()["error"]["uri"].startswith(
        "Refused: ::ffff:0:a00:1 is an IPv4-translated IPv6 address for 10.0.0.1, a private address, "
    )


def test_an_allowed_network_is_reachable(owner, target, run_due, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    user, _ = owner
    target.expect_request("/hook").respond_with_data("ok")
    job = make_job(user, target.url_for("/hook").replace("127.0.0.1", "localhost"))
    run_due()
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("127.0.0.1", True),
        ("10.0.0.1", True),
        ("172.31.255.255", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("100.127.255.254", True),
        ("::1", True),
        ("fc00::1", True),
        ("fe80::abcd", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::a00:1", True),
        ("224.0.0.1", True),
        ("255.255.255.255", True),
    ],
)
def test_the_address_policy_refuses_each_internal_class(address, refused):
    policy = addresses.AddressPolicy()
    assert (policy.refusal(ipaddress.ip_address(address)) is not None) is refused


def test_the_allowlist_exempts_only_its_networks():
    policy = addresses.AddressPolicy(addresses.parse_networks(["127.0.0.0/8", "10.1.0.0/16"]))
    assert policy.refusal(ipaddress.ip_address("127.0.0.5")) is None
    assert policy.refusal(ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal(ipaddress.ip_address("10.2.0.1")) == "a private address"
    assert policy.refusal(ipaddress.ip_address("::1")) == "a loopback address"


def test_a_bad_allowlist_entry_is_named():
    with pytest.raises(ValueError, match=r"'127\.0\.0\.0/33' is not a network"):
        addresses.parse_networks(["127.0.0.0/33"])
