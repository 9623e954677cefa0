"""The outbound client jobs share with other senders: guarded or trusted, bounded, timed out."""

import time

import pytest
from werkzeug import Response

from core import outbound

from .helpers import requests_to


@pytest.fixture
def nothing_allowed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


def test_a_trusted_destination_is_reached_without_the_guard(target, nothing_allowed):
    target.expect_request("/sender").respond_with_data("sent")
    response = outbound.send("POST", target.url_for("/sender"), content=b"x", trusted=True)
    assert (response.status_code, response.body) == (200, b"sent")


def test_a_guarded_request_to_loopback_is_refused_before_connecting(target, nothing_allowed):
    target.expect_request("/hook").respond_with_data("never")
    with pytest.raises(outbound.DestinationRefused, match=r"Refused: 127\.0\.0\.1 is a loopback address\."):
        outbound.send("GET", target.url_for("/hook"))
    assert requests_to(target, "/hook") == []


def test_the_allowlist_is_read_when_the_request_is_made(target, settings):
    target.expect_request("/hook").respond_with_data("ok")
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(outbound.DestinationRefused):
        outbound.send("GET", target.url_for("/hook"))
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert outbound.send("GET", target.url_for("/hook")).status_code == 200


def test_it_reads_no_more_of_a_response_than_it_is_allowed(target):
    target.expect_request("/big").respond_with_data("x" * 200_000)
    response = outbound.send("GET", target.url_for("/big"), max_response_bytes=1000)
    assert (len(response.body), response.truncated) == (1000, True)
    assert response.header("content-length") == "200000"


def test_a_whole_small_response_is_not_truncated(target):
    target.expect_request("/small").respond_with_data("ok", headers={"X-Case": "Kept"})
    response = outbound.send("GET", target.url_for("/small"))
    assert (response.body, response.truncated) == (b"ok", False)
    assert ("X-Case", "Kept") in response.headers


def test_a_slow_destination_times_out(target):
    def late(request):
        time.sleep(1.5)
        return Response("late")

    target.expect_request("/slow").respond_with_handler(late)
    with pytest.raises(outbound.OutboundTimeout):
        outbound.send("GET", target.url_for("/slow"), timeout=0.5)


def test_a_closed_port_is_a_connection_error(unused_port):
    with pytest.raises(outbound.OutboundConnectionError):
        outbound.send("GET", f"http://127.0.0.1:{unused_port}/")


def test_redirects_are_returned_not_followed(target):
    target.expect_request("/moved").respond_with_data("", status=301, headers={"Location": "/elsewhere"})
    response = outbound.send("GET", target.url_for("/moved"))
    assert response.status_code == 301
    assert requests_to(target, "/elsewhere") == []


@pytest.mark.parametrize("url", ["ftp://example.org/", "http:///path", "file:///etc/passwd"])
def test_only_http_urls_with_a_host_are_requested(url):
    with pytest.raises(outbound.InvalidDestination):
        outbound.send("GET", url)


@pytest.mark.parametrize(
    "url",
    ["http://a.example\r\n.evil/", "http://a.example/x\r\nHost: evil", "http://a.exa mple/", "http://a.example/\x00"],
)
def test_a_url_with_whitespace_or_control_characters_is_refused_not_cleaned(url):
    with pytest.raises(outbound.InvalidDestination, match="whitespace or a control character"):
        outbound.send("GET", url)
