"""A fast local HTTP sink for the jobs benchmark: answers 200 and remembers each hit.

    python bench/jobs_sink.py --port 8960

Paths starting with /slow answer after 50 ms. Paths starting with /q/ (one per job queue
of `jobs_queues.py`) answer after --queue-delay-ms, and the sink keeps, per path, the most
requests it held at once (from the request to its answer). A request with `X-Baseline: 1` is
answered the same way but not remembered (the baseline's load). GET /_stats returns what
happened since the last POST /_reset as
`{"hits": [[delivery_id, attempt, unix_time], ...], "most_in_flight": {path: count}}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from fast_http import Handler, response, serve

hits: list[tuple[str, str, float]] = []
in_flight: dict[str, int] = {}  # requests held now, per /q/ path
most_in_flight: dict[str, int] = {}  # the most held at once, per /q/ path
OK = response(b"200 OK", b"ok", b"text/plain")
QUEUE_DELAY = 0.005  # seconds a /q/ path holds each request (--queue-delay-ms)


class JobsSink(Handler):
    def handle(self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes):
        if url == b"/_stats":
            return response(b"200 OK", json.dumps({"hits": hits, "most_in_flight": most_in_flight}).encode())
        if url == b"/_reset":
            hits.clear()
            in_flight.clear()
            most_in_flight.clear()
            return OK
        if b"x-baseline" not in headers:
            delivery = headers.get(b"job-delivery-id", b"").decode()
            hits.append((delivery, headers.get(b"job-attempt", b"").decode(), time.time()))
        if url.startswith(b"/slow"):
            return self.later()  # a target that takes its time: requests stay in flight
        if url.startswith(b"/q/"):
            return self.held(url.decode())
        return OK

    async def later(self) -> bytes:
        await asyncio.sleep(0.05)
        return OK

    async def held(self, path: str) -> bytes:
        """Answer after QUEUE_DELAY, counting the requests `path` holds at once."""
        in_flight[path] = in_flight.get(path, 0) + 1
        most_in_flight[path] = max(most_in_flight.get(path, 0), in_flight[path])
        try:
            await asyncio.sleep(QUEUE_DELAY)
        finally:
            in_flight[path] -= 1
        return OK


def main() -> None:
    global QUEUE_DELAY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queue-delay-ms", type=float, default=QUEUE_DELAY * 1000)
    args = parser.parse_args()
    QUEUE_DELAY = args.queue_delay_ms / 1000
    serve(JobsSink, args.port)


if __name__ == "__main__":
    main()
