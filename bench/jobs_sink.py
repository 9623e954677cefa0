"""A fast local HTTP sink for the jobs benchmark: answers 200 and remembers each hit.

Serve with `uvicorn --app-dir bench jobs_sink:app --host 127.0.0.1 --port <port>` (one process).
Paths starting with /slow answer after 50 ms. GET /_stats returns the hits since the last POST /_reset as
`{"hits": [[delivery_id, attempt, unix_time], ...]}`. A request with an `X-Baseline` header (the benchmark's
load generator measuring the sink's capacity) is answered the same way but not recorded.
"""

import asyncio
import json
import time

hits: list[tuple[str, str, float]] = []

OK = [(b"content-type", b"text/plain"), (b"content-length", b"2")]


async def _drain(receive) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)


async def _answer(send, status: int, body: bytes, headers=None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or OK})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    received = time.time()
    await _drain(receive)
    path = scope["path"]
    if path == "/_stats":
        body = json.dumps({"hits": hits}).encode()
        await _answer(
            send, 200, body, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        )
        return
    if path == "/_reset":
        hits.clear()
        await _answer(send, 200, b"ok")
        return
    headers = dict(scope["headers"])
    if b"x-baseline" not in headers:
        delivery = headers.get(b"job-delivery-id", b"").decode()
        attempt = headers.get(b"job-attempt", b"").decode()
        hits.append((delivery, attempt, received))
    if path.startswith("/slow"):
        await asyncio.sleep(0.05)  # a target that takes its time: requests stay in flight
    await _answer(send, 200, b"ok")
