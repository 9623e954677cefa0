"""Signatures on every job request and callback.

    Job-Signature: t=1767225600,v1=5257a869...,v1=9c1e0b4d...

`t` is the Unix time of signing; each `v1` is the hex HMAC-SHA256, under one key,
of `"<t>." + body` (the body's bytes, empty for a request without one). One `v1`
is given per key in use: JOBS_SIGNING_KEY and, during a rotation,
JOBS_SIGNING_NEXT_KEY. A receiver accepts the request when any `v1` matches a key
it knows and `t` is recent. `docs/jobs.md` has a receiver's snippet.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.startup import HOW_TO_SET

SIGNATURE_HEADER = "Job-Signature"
DELIVERY_HEADER = "Job-Delivery-Id"
ATTEMPT_HEADER = "Job-Attempt"
JOB_HEADER = "Job-Id"
# Headers a job may not set itself: ours and those the HTTP client manages.
RESERVED_HEADERS = frozenset(
    {
        SIGNATURE_HEADER.lower(),
        DELIVERY_HEADER.lower(),
        ATTEMPT_HEADER.lower(),
        JOB_HEADER.lower(),
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "expect",
    }
)


def signing_keys() -> list[str]:
    """The keys requests are signed with; never none, so nothing leaves unsigned."""
    if not settings.JOBS_SIGNING_KEY:
        raise ImproperlyConfigured(HOW_TO_SET["JOBS_SIGNING_KEY"])
    return [key for key in (settings.JOBS_SIGNING_KEY, settings.JOBS_SIGNING_NEXT_KEY) if key]


def signature(key: str, timestamp: int, body: bytes) -> str:
    return hmac.new(key.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(*, timestamp: int, body: bytes, keys: Iterable[str] | None = None) -> str:
    """The Job-Signature value for `body` signed at `timestamp`."""
    keys = signing_keys() if keys is None else keys
    return ",".join([f"t={timestamp}", *(f"v1={signature(key, timestamp, body)}" for key in keys)])


def verify(header: str, body: bytes, *, key: str, now: int, tolerance: int = 300) -> bool:
    """Whether `header` holds a signature of `body` under `key` made within `tolerance` seconds of `now`.

    The same check a receiver makes (see docs/jobs.md).
    """
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for name, value in fields if name.strip() == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    timestamp = int(timestamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(key, timestamp, body)
    return any(name.strip() == "v1" and hmac.compare_digest(value, expected) for name, value in fields)
