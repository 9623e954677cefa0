"""The web process's HTTP/1.1 protocol: uvicorn's httptools one, with a bound on what it reads of a request's head.

httptools (llhttp) is the fastest parser uvicorn has, but it holds a header line whole until it ends, however
long: alone, a 16 MB header field is read and served. `BoundedHttpToolsProtocol` gives the parser a request's
head no more than MAX_HEAD_BYTES at a time and, when the head has not ended by then, answers 431 and closes
the connection. Past the parser, `RequestBounds` (`core.asgi`) bounds the header fields themselves (count and
bytes) in each face's own error format.

It also sends a response of known length (a Content-Length) in one write, its head with the first piece of
its body (`HeadWithBody`), where uvicorn writes the head and the body apart: one system call and one wake-up
of the client instead of two for every small answer (the cache's, most of all).

The Procfile runs uvicorn with it: `--http core.server:BoundedHttpToolsProtocol`.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

MAX_HEAD_BYTES = 65_536  # the request line and every header field of one request, their line ends included

REFUSAL_BODY = b"The request's head is larger than the limit of %d bytes." % MAX_HEAD_BYTES


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing (431, then closing the connection) a request whose head does not
    end within MAX_HEAD_BYTES.

    Outside a request's body, what arrives is given to the parser no more than the room left in the head at a
    time, so the parser never holds more of a head than the bound (twice it at most, when a read also held the
    end of the request before: pipelined requests, which browsers and proxies do not send)."""

    # In slots, not the instance's dict: two more keys there would take each connection past the keys its class's
    # instances share, into a dict of its own (about 1.2 KiB more per connection, held by every idle subscriber).
    __slots__ = ("_head_bytes", "_in_body")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._in_body = False  # from the end of a request's head to the end of the request
        self._head_bytes = 0  # given to the parser since the last request ended

    def on_headers_complete(self) -> None:
        self._in_body = True
        super().on_headers_complete()  # makes the request's cycle; its application runs later, on the loop
        self.cycle.transport = HeadWithBody(self.transport, self.cycle)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body, self._head_bytes = False, 0

    def data_received(self, data: bytes) -> None:
        while data and not self._in_body:
            room = MAX_HEAD_BYTES - self._head_bytes
            if room <= 0:
                self._refuse()
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self.transport.is_closing():  # refused by the parser, or upgraded
                return
        if data:
            super().data_received(data)

    def _refuse(self) -> None:
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(REFUSAL_BODY),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + REFUSAL_BODY)
        self.transport.close()


class HeadWithBody:
    """The transport as one request's response cycle sees it: the head of a response of known length (uvicorn
    has seen its Content-Length when it writes the head) is held until the first piece of its body, and both
    are written together. Anything else is written at once: an interim 100 Continue (written before the
    response starts), the head of a streamed response (chunked: an event stream's client sees it before the
    first event), and that of an answer to HEAD (which has no body to wait for)."""

    __slots__ = ("_cycle", "_head", "_transport")

    def __init__(self, transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle: RequestResponseCycle | None = cycle  # until the head is written (no cycle of references after)
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif self._cycle is not None and self._cycle.response_started:  # the response's head
            cycle, self._cycle = self._cycle, None
            if cycle.chunked_encoding is False and cycle.scope["method"] != "HEAD":
                self._head = data
                return
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:  # the response ended without a body (the application failed): as before
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)
