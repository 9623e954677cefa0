"""The web process's HTTP/1.1 protocol: uvicorn's httptools one, with a bound on what it reads of a request's head.

httptools (llhttp) is the fastest parser uvicorn has, but it holds a header line whole until it ends, however
long: alone, a 16 MB header field is read and served. `BoundedHttpToolsProtocol` gives the parser a request's
head no more than MAX_HEAD_BYTES at a time and, when the head has not ended by then, answers 431 and closes
the connection. Past the parser, `RequestBounds` (`core.asgi`) bounds the header fields themselves (count and
bytes) in each face's own error format.

The Procfile runs uvicorn with it: `--http core.server:BoundedHttpToolsProtocol`.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
        super().on_headers_complete()

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
