"""The web process's protocol (core.server) writes a response of known length in one write, and anything else
as soon as it has it, on a real loopback connection: each connection's transport is kept in a proxy that
counts the writes the protocol makes through it."""

import asyncio
import contextlib

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from core.server import BoundedHttpToolsProtocol


class CountedTransport:
    """A connection's real transport, keeping each write the protocol makes."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self.transport, name)


class Served:
    """`app` served on 127.0.0.1 by the protocol, on the running loop; `writes` of every connection."""

    def __init__(self, app) -> None:
        self.config = Config(app=app, lifespan="off", log_level="warning")
        self.state = ServerState()
        self.transports: list[CountedTransport] = []

    def protocol(self) -> asyncio.Protocol:
        protocol = BoundedHttpToolsProtocol(config=self.config, server_state=self.state, app_state={})
        made = protocol.connection_made

        def connection_made(transport: asyncio.Transport) -> None:
            counted = CountedTransport(transport)
            self.transports.append(counted)
            made(counted)

        protocol.connection_made = connection_made
        return protocol

    @contextlib.asynccontextmanager
    async def connection(self):
        server = await asyncio.get_running_loop().create_server(self.protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            yield reader, writer
        finally:
            writer.close()
            server.close()

    @property
    def writes(self) -> list[bytes]:
        return [data for transport in self.transports for data in transport.writes]


def request(method: str = "GET", *fields: str) -> bytes:
    return "\r\n".join([f"{method} / HTTP/1.1", "Host: 127.0.0.1", *fields, "", ""]).encode()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)


def sized(body: bytes):
    async def app(scope, receive, send):
        await receive()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize("body", [b"hello", b"", b"x" * 100_000])
def test_a_response_of_known_length_is_written_once_head_and_body_together(body):
    served = Served(sized(body))

    async def scenario():
        async with served.connection() as (reader, writer):
            writer.write(request())
            head = await read_head(reader)
            received = await asyncio.wait_for(reader.readexactly(len(body)), timeout=10)
            return head, received

    head, received = asyncio.run(scenario())
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: %d\r\n" % len(body) in head
    assert received == body
    assert served.writes == [head + body]


def test_each_response_on_a_kept_connection_is_one_write():
    served = Served(sized(b"again"))

    async def scenario():
        async with served.connection() as (reader, writer):
            for _ in range(3):
                writer.write(request())
                await read_head(reader)
                await asyncio.wait_for(reader.readexactly(5), timeout=10)

    asyncio.run(scenario())
    assert len(served.writes) == 3 and all(data.endswith(b"\r\n\r\nagain") for data in served.writes)


def test_the_head_of_a_streamed_response_is_written_before_its_first_piece():
    """An event stream: the client sees the head while the body does not exist yet."""
    first_piece = asyncio.Event()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await first_piece.wait()
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": False})

    served = Served(app)

    async def scenario():
        async with served.connection() as (reader, writer):
            writer.write(request())
            head = await read_head(reader)  # the body is not sent yet
            first_piece.set()
            rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), timeout=10)
            return head, rest

    head, rest = asyncio.run(scenario())
    assert b"transfer-encoding: chunked" in head and rest == b"9\r\ndata: 1\n\n\r\n0\r\n\r\n"
    assert served.writes == [head, rest]


def test_the_head_of_an_answer_to_head_is_written_though_no_body_follows():
    served = Served(sized(b"not sent"))

    async def scenario():
        async with served.connection() as (reader, writer):
            writer.write(request("HEAD"))
            return await read_head(reader)

    head = asyncio.run(scenario())
    assert b"content-length: 8\r\n" in head and served.writes == [head]


def test_a_response_whose_application_fails_after_its_head_is_cut_as_before():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        raise RuntimeError("failed between the head and the body")

    served = Served(app)

    async def scenario():
        async with served.connection() as (reader, writer):
            writer.write(request())
            return await asyncio.wait_for(reader.read(), timeout=10)  # up to the end: the connection is closed

    received = asyncio.run(scenario())
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"content-length: 10\r\n\r\n")


def test_an_interim_100_continue_is_written_before_the_client_sends_its_body():
    async def app(scope, receive, send):
        message = await receive()
        body = message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    served = Served(app)

    async def scenario():
        async with served.connection() as (reader, writer):
            writer.write(request("PUT", "Content-Length: 4", "Expect: 100-continue"))
            interim = await read_head(reader)  # before any of the body is sent
            writer.write(b"ping")
            head = await read_head(reader)
            return interim, head, await asyncio.wait_for(reader.readexactly(4), timeout=10)

    interim, head, body = asyncio.run(scenario())
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n" and head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"ping"
    assert served.writes == [interim, head + body]
