"""A fast local HTTP sink for the jobs benchmark: answers 200 and remembers each hit.

    python bench/jobs_sink.py --port 8960

Paths starting with /slow answer after 50 ms. A request with `X-Baseline: 1` is answered
the same way but not remembered (the baseline's load). GET /_stats returns the hits since
the last POST /_reset as `{"hits": [[delivery_id, attempt, unix_time], ...]}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from fast_http import Handler, response, serve

hits: list[tuple[str, str, float]] = []
OK = response(b"200 OK", b"ok", b"text/plain")


class JobsSink(Handler):
    def handle(self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes):
        if url == b"/_stats":
            return response(b"200 OK", json.dumps({"hits": hits}).encode())
        if url == b"/_reset":
            hits.clear()
            return OK
        if b"x-baseline" not in headers:
            delivery = headers.get(b"job-delivery-id", b"").decode()
            hits.append((delivery, headers.get(b"job-attempt", b"").decode(), time.time()))
        if url.startswith(b"/slow"):
            return self.later()  # a target that takes its time: requests stay in flight
        return OK

    async def later(self) -> bytes:
        await asyncio.sleep(0.05)
        return OK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    serve(JobsSink, parser.parse_args().port)


if __name__ == "__main__":
    main()
