"""Requests to the two HTTP peers of a send: the identity store (an identity's address)
and the message sender (the outbound message).

Both URLs are the operator's, so requests go through `core.outbound` as trusted
destinations, on the process's outbound event loop: a batch's deliveries run
concurrently there (SEND_CONCURRENCY at a time). A request that gets no
answer (connection error, timeout), a 429 or a 5xx is retried after each of
SEND_RETRY_DELAYS (or the Retry-After asked for, when longer, up to
SEND_RETRY_AFTER_MAX); any other 4xx fails at once. Nothing here touches the
database: these coroutines run on the outbound loop, not in the send task's thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.utils import timezone

from core import outbound

logger = logging.getLogger(__name__)

# Bytes of a peer's response that are read; the rest of a long answer is not needed.
RESPONSE_MAX_BYTES = 65_536
# Characters of a response body kept in a failure's reason.
REASON_BODY_CHARS = 500
IDEMPOTENCY_HEADER = "Idempotency-Key"


class DeliveryOutcome:
    """What came of a delivery (`Delivery.outcome`)."""

    SENT = "sent"
    DRY_RUN = "dry_run"
    NO_ADDRESS = "no_address"
    FAILED = "failed"


@dataclass
class Delivery:
    """One message for one subscription: what to send and, once tried, what came of it."""

    subscription_id: Any
    identity: str
    sequence_number: int
    payload: dict
    idempotency_key: str
    dry_run: bool = False
    outcome: str = ""
    reason: str = ""
    outbound_id: str | None = None
    sender_status: int | None = None  # the HTTP status the message sender answered with
    failure_kind: str = ""  # for the metrics: http_4xx, http_429, http_5xx, timeout, connection, ...
    retries: int = 0
    durations: list[float] = field(default_factory=list)  # seconds of each request made

    @property
    def delivered(self) -> bool:
        return self.outcome in (DeliveryOutcome.SENT, DeliveryOutcome.DRY_RUN)


class PeerFailure(Exception):
    """A request that did not succeed (after its retries); the message says why, `kind` sorts it."""

    def __init__(self, reason: str, kind: str = "other"):
        super().__init__(reason)
        self.kind = kind


def _excerpt(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return text[:REASON_BODY_CHARS]


async def _request(
    delivery: Delivery, what: str, method: str, url: str, *, headers: dict, content: bytes | None, deadline: float
) -> outbound.OutboundResponse:
    """Make the request, retrying what is worth retrying; the 2xx response, or PeerFailure."""
    delays = list(settings.SEND_RETRY_DELAYS)
    attempt = 0
    while True:
        attempt += 1
        started = time.monotonic()
        wait: float | None = None
        kind = "other"
        try:
            response = await outbound.request(
                method,
                url,
                headers=headers,
                content=content,
                timeout=settings.SEND_TIMEOUT,
                max_response_bytes=RESPONSE_MAX_BYTES,
                trusted=True,
            )
        except outbound.OutboundError as error:
            delivery.durations.append(time.monotonic() - started)
            reason = f"{what}: {type(error).__name__}: {error}"
            kind = "timeout" if isinstance(error, outbound.OutboundTimeout) else "connection"
        else:
            delivery.durations.append(response.elapsed)
            status = response.status_code
            if 200 <= status < 300:
                return response
            reason = f"{what} answered HTTP {status}: {_excerpt(response.body)}"
            kind = "http_5xx" if status >= 500 else "http_429" if status == 429 else "http_4xx"
            if kind == "http_4xx":
                raise PeerFailure(reason, kind)
            wait = outbound.retry_after_seconds(response.header("Retry-After"), now=timezone.now())
        if not delays:
            raise PeerFailure(f"{reason} (after {attempt} attempts)" if attempt > 1 else reason, kind)
        delay = delays.pop(0)
        if wait is not None and wait > settings.SEND_RETRY_AFTER_MAX:
            raise PeerFailure(f"{reason}; it asked to retry after {wait:g} s, longer than SEND_RETRY_AFTER_MAX", kind)
        delay = max(delay, wait or 0.0)
        if time.monotonic() + delay > deadline:
            raise PeerFailure(f"{reason}; no time left to retry within SEND_BATCH_SECONDS", kind)
        await asyncio.sleep(delay)
        delivery.retries += 1


def _token_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"} if token else {}


async def identity_address(delivery: Delivery, *, deadline: float) -> str | None:
    """The identity's default msisdn address from the identity store, or None when it has none."""
    base = settings.IDENTITY_STORE_URL.rstrip("/")
    url = (
        f"{base}/identities/{quote(delivery.identity, safe='')}/addresses/msisdn"
        "?default=True&use_communicate_through=True"
    )
    headers = {**_token_headers(settings.IDENTITY_STORE_TOKEN), "Accept": "application/json"}
    response = await _request(
        delivery, "The identity store", "GET", url, headers=headers, content=None, deadline=deadline
    )
    try:
        results = json.loads(response.body).get("results") or []
        address = results[0].get("address") if results else None
    except (ValueError, AttributeError):
        raise PeerFailure(
            f"The identity store's answer is not the expected JSON: {_excerpt(response.body)}", "bad_response"
        ) from None
    return address or None


async def outbound_create(delivery: Delivery, *, deadline: float) -> str | None:
    """POST the payload to the message sender; the outbound id it answers with."""
    if not settings.MESSAGE_SENDER_URL:
        raise PeerFailure("MESSAGE_SENDER_URL is not set: there is no message sender to send to.", "not_configured")
    url = f"{settings.MESSAGE_SENDER_URL.rstrip('/')}/outbound/"
    headers = {
        **_token_headers(settings.MESSAGE_SENDER_TOKEN),
        "Content-Type": "application/json",
        "Accept": "application/json",
        IDEMPOTENCY_HEADER: delivery.idempotency_key,
    }
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    response = await _request(
        delivery, "The message sender", "POST", url, headers=headers, content=body, deadline=deadline
    )
    delivery.sender_status = response.status_code
    try:
        outbound_id = json.loads(response.body).get("id")
    except (ValueError, AttributeError):
        return None
    return None if outbound_id is None else str(outbound_id)


async def deliver(delivery: Delivery, *, deadline: float) -> Delivery:
    """Look up the address (when an identity store is set), then send (unless a dry run)."""
    if time.monotonic() > deadline:
        delivery.outcome = DeliveryOutcome.FAILED
        delivery.reason = "Not sent: the send task's time (SEND_BATCH_SECONDS) ran out before this message."
        delivery.failure_kind = "out_of_time"
        return delivery
    try:
        if settings.IDENTITY_STORE_URL:
            address = await identity_address(delivery, deadline=deadline)
            if address is None:
                delivery.outcome = DeliveryOutcome.NO_ADDRESS
                delivery.reason = "Valid recipient could not be found"
                return delivery
            delivery.payload = {"to_addr": address, **delivery.payload}
        if delivery.dry_run:
            delivery.outcome = DeliveryOutcome.DRY_RUN
            return delivery
        delivery.outbound_id = await outbound_create(delivery, deadline=deadline)
        delivery.outcome = DeliveryOutcome.SENT
    except PeerFailure as failure:
        delivery.outcome = DeliveryOutcome.FAILED
        delivery.reason = str(failure)
        delivery.failure_kind = failure.kind
    return delivery


async def _deliver_safely(delivery: Delivery, deadline: float) -> None:
    try:
        await deliver(delivery, deadline=deadline)
    except Exception as error:  # a bug must not cost the batch's other messages
        logger.exception("Sending to subscription %s failed unexpectedly", delivery.subscription_id)
        delivery.outcome = DeliveryOutcome.FAILED
        delivery.reason = f"Unexpected error: {type(error).__name__}: {error}"
        delivery.failure_kind = "other"


async def deliver_each(deliveries: list[Delivery], *, deadline: float) -> None:
    """Make every delivery's requests, SEND_CONCURRENCY at a time (on the outbound loop)."""
    room = asyncio.Semaphore(settings.SEND_CONCURRENCY)

    async def one(delivery: Delivery) -> None:
        async with room:
            await _deliver_safely(delivery, deadline)

    await asyncio.gather(*(one(delivery) for delivery in deliveries))


def deliver_all(deliveries: list[Delivery], *, deadline: float) -> None:
    """Make every delivery's requests and wait for them (from a send task's thread)."""
    if deliveries:
        outbound.run(deliver_each(deliveries, deadline=deadline))
