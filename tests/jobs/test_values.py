"""The rules of a job's values, applied directly (the API tests check the same rules through HTTP)."""

from datetime import UTC, datetime

import pytest

from jobs import values
from jobs.values import InvalidValue


@pytest.mark.parametrize(
    "given",
    [
        "HTTPS://Example.ORG/hook?a=1",
        "http://example.org",
        "https://example.org/hook",
        "http://[::1]:8080/x",
        "http://bücher.example/",
    ],
)
def test_a_uri_is_stored_as_given(given):
    assert values.checked_uri(f" {given} ") == given


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("ftp://example.org/", "Must be an absolute http or https URL"),
        ("/hook", "Must be an absolute http or https URL"),
        ("http://example.org/a b", "Must be escaped"),
        ("http://example.org:99999/", "Is not a valid URL"),
        ("http://[::1/hook", "Is not a valid URL"),
    ],
)
def test_a_uri_that_cannot_be_called_is_invalid(given, message):
    with pytest.raises(InvalidValue, match=message):
        values.checked_uri(given)


def test_a_time_without_an_offset_is_read_in_the_jobs_time_zone(settings):
    settings.JOBS_TIME_ZONE = "America/Los_Angeles"
    moment = values.parse_at("2030-01-31T18:36:21")
    assert moment.astimezone(UTC) == datetime(2030, 2, 1, 2, 36, 21, tzinfo=UTC)
    assert values.format_time(moment) == "2030-01-31 18:36:21 -0800"


def test_retry_delays_must_increase_within_the_limits(settings):
    settings.JOBS_MAX_RETRIES = 3
    settings.JOBS_MAX_RETRY_DELAY = 900
    assert values.retry_delays([10, 120, 900]) == [10, 120, 900]
    for delays, message in (
        ([10, 10], "Must be increasing"),
        ([0, 10], "each at least 1"),
        ([1, 2, 3, 4], "At most 3 retries"),
        ([10, 901], "at most 900 s"),
    ):
        with pytest.raises(InvalidValue, match=message):
            values.retry_delays(delays)


def test_headers_are_text_and_not_the_services_own():
    assert values.request_headers({"X-Count": 3}) == {"X-Count": "3"}
    for headers, message in (
        ({"Job-Signature": "x"}, "set by the service"),
        ({"Bad Name": "x"}, "is not a header name"),
        ({"X-A": "one\r\ntwo"}, "line breaks"),
        ({"X-A": True}, "must be a string"),
    ):
        with pytest.raises(InvalidValue, match=message):
            values.request_headers(headers)
