"""A fast local message sender for the schedule-send benchmark.

    python bench/subscriptions_sink.py serve --port 8950

`serve` answers every `POST /outbound/` with 201 and an id, and counts each delivery
by its `Idempotency-Key` header: deliveries, distinct keys, and the time of the
first and last. A request with `X-Baseline: 1` is answered the same way but only
counted as load: the benchmark measures the sink's own capacity, its baseline, by
loading it with wrk with such requests. `GET /_stats` answers the counts as JSON;
`POST /_reset` clears them; `POST /_keys` writes the distinct keys, one a line, to
the path in its body.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from fast_http import Handler, response, serve


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.keys: dict[str, int] = {}
        self.deliveries = 0
        self.baseline = 0
        self.first = None
        self.last = None

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "deliveries": self.deliveries,
                "distinct": len(self.keys),
                "duplicates": self.deliveries - len(self.keys),
                "without_key": self.keys.get("", 0),
                "first": self.first,
                "last": self.last,
                "baseline": self.baseline,
            }
        ).encode()


STATS = Stats()


class SinkHandler(Handler):
    def handle(self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        if url == b"/_stats":
            return response(b"200 OK", STATS.as_json())
        if url == b"/_reset":
            STATS.reset()
            return response(b"200 OK", b"{}")
        if url == b"/_keys":
            with open(body.decode(), "w") as out:
                out.writelines(f"{key}\n" for key in STATS.keys)
            return response(b"200 OK", b"{}")
        if method == b"POST" and url.startswith(b"/outbound/"):
            now = time.time()
            if b"x-baseline" in headers:
                STATS.baseline += 1
            else:
                key = headers.get(b"idempotency-key", b"").decode()
                STATS.deliveries += 1
                STATS.keys[key] = STATS.keys.get(key, 0) + 1
                if STATS.first is None:
                    STATS.first = now
                STATS.last = now
            return response(b"201 Created", b'{"id":"' + str(uuid.uuid4()).encode() + b'"}')
        return response(b"404 Not Found", b"{}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    serve(SinkHandler, arguments.port)


if __name__ == "__main__":
    main()
