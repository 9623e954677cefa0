"""Reading a peer's Retry-After: the one parser the send pipeline and the jobs share."""

from datetime import UTC, datetime

import pytest

from core.outbound import retry_after_seconds

NOW = datetime(2030, 1, 31, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 30 ", 30.0),
        ("0", 0.0),
        ("86400000", 86_400_000.0),  # no limit here: the caller applies its own
        ("Thu, 31 Jan 2030 12:01:30 GMT", 90.0),
        ("Thu, 31 Jan 2030 13:00:00 +0100", 0.0),  # the same moment as NOW
        ("Thu, 31 Jan 2030 11:00:00 GMT", 0.0),  # a date already past: no wait
    ],
)
def test_it_reads_seconds_and_http_dates(value, seconds):
    assert retry_after_seconds(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "-5", "1.5", "soon", "²", "Thu, 31 Jan 2030 12:01:30 -0000", "Thu, 99 Foo 2030"],
)
def test_it_gives_none_for_what_it_cannot_read(value):
    assert retry_after_seconds(value, now=NOW) is None
