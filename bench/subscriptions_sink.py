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
import asyncio
import json
import time
import uuid

import httptools
import uvloop


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


def _response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class SinkProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self._reset_request()

    def _reset_request(self) -> None:
        self.url = b""
        self.key = ""
        self.is_baseline = False
        self.body = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self._reset_request()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"idempotency-key":
            self.key = value.decode()
        elif lowered == b"x-baseline":
            self.is_baseline = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if self.url == b"/_stats":
            self.transport.write(_response(b"200 OK", STATS.as_json()))
        elif self.url == b"/_reset":
            STATS.reset()
            self.transport.write(_response(b"200 OK", b"{}"))
        elif self.url == b"/_keys":
            with open(self.body.decode(), "w") as out:
                out.writelines(f"{key}\n" for key in STATS.keys)
            self.transport.write(_response(b"200 OK", b"{}"))
        elif method == b"POST" and self.url.startswith(b"/outbound/"):
            now = time.time()
            if self.is_baseline:
                STATS.baseline += 1
            else:
                STATS.deliveries += 1
                STATS.keys[self.key] = STATS.keys.get(self.key, 0) + 1
                if STATS.first is None:
                    STATS.first = now
                STATS.last = now
            body = b'{"id":"' + str(uuid.uuid4()).encode() + b'"}'
            self.transport.write(_response(b"201 Created", body))
        else:
            self.transport.write(_response(b"404 Not Found", b"{}"))
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve_parser = sub.add_parser("serve")
    serve_parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    uvloop.run(serve(arguments.port))


if __name__ == "__main__":
    main()
