"""A small HTTP/1.1 server on uvloop and httptools for the benchmarks' local peers (sinks).

A peer subclasses `Handler` and answers each request in `handle`; it runs with
`serve(MyHandler, port)`. It keeps connections alive, answers requests in order and
costs a few tens of microseconds a request, so that a benchmark measures the client.
"""

from __future__ import annotations

import asyncio

import httptools
import uvloop


def response(status: bytes, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        status,
        content_type,
        len(body),
        body,
    )


class Handler(asyncio.Protocol):
    """One connection: parses requests and writes what `handle` answers (or awaits, for a slow peer)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, bytearray()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        answer = self.handle(self.parser.get_method(), self.url, self.headers, bytes(self.body))
        if isinstance(answer, bytes):
            self._write(answer, keep_alive)
        else:  # a coroutine: a peer that takes its time (requests on this connection then wait in order)
            asyncio.ensure_future(answer).add_done_callback(lambda done: self._write(done.result(), keep_alive))

    def _write(self, answer: bytes, keep_alive: bool) -> None:
        self.transport.write(answer)
        if not keep_alive:
            self.transport.close()

    def handle(self, method: bytes, url: bytes, headers: dict[bytes, bytes], body: bytes):
        raise NotImplementedError


def serve(handler: type[Handler], port: int) -> None:
    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(handler, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    uvloop.run(run())
