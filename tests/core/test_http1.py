"""The wire under the outbound engine, against a real TCP peer that answers bytes the test writes.

Each test scripts what the peer sends back for each request it reads; the peer records
the raw requests and the connection each arrived on.
"""

import contextlib
import socket
import threading
from collections.abc import Callable

import pytest

from core import http1, outbound

Answer = Callable[[bytes], bytes | None]  # the raw request -> the bytes to send back (None: close at once)


class ScriptedPeer:
    """A TCP server on 127.0.0.1 that reads one request at a time and answers as scripted."""

    def __init__(self, *answers: Answer, close_after_each: bool = False):
        self.answers = list(answers)
        self.close_after_each = close_after_each
        self.requests: list[tuple[int, bytes]] = []  # (connection number, raw request)
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while self.answers:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(client, self.connections), daemon=True).start()

    def _talk(self, client: socket.socket, number: int) -> None:
        with client, contextlib.suppress(OSError):  # the client may drop a connection it no longer wants
            buffer = b""
            while self.answers:
                while b"\r\n\r\n" not in buffer:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(rest) < length:
                    rest += client.recv(65536)
                request, buffer = head + b"\r\n\r\n" + rest[:length], rest[length:]
                self.requests.append((number, request))
                answer = self.answers.pop(0)(request)
                if answer is None:
                    return
                client.sendall(answer)
                if self.close_after_each:
                    return

    def close(self) -> None:
        self.answers.clear()
        self.server.close()


@pytest.fixture
def peer(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    made: list[ScriptedPeer] = []

    def make(*answers: Answer, **options) -> ScriptedPeer:
        made.append(ScriptedPeer(*answers, **options))
        return made[-1]

    yield make
    for each in made:
        each.close()
    outbound.close_clients()


def reply(raw: bytes) -> Answer:
    return lambda request: raw


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_kept_alive_connection_carries_the_next_request(peer):
    server = peer(reply(OK), reply(OK))
    assert outbound.send("GET", server.url("/a")).body == b"ok"
    assert outbound.send("GET", server.url("/b")).body == b"ok"
    assert [number for number, _ in server.requests] == [1, 1]


def test_a_chunked_body_is_read_whole(peer):
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    server = peer(reply(chunked), reply(OK))
    assert outbound.send("GET", server.url()).body == b"hello world"
    assert outbound.send("GET", server.url()).body == b"ok"  # and the connection is still good
    assert [number for number, _ in server.requests] == [1, 1]


def test_a_body_without_a_length_runs_until_the_peer_closes(peer):
    server = peer(reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"), close_after_each=True)
    response = outbound.send("GET", server.url())
    assert (response.body, response.truncated) == (b"all of it", False)


def test_a_long_body_is_cut_at_the_limit_and_its_connection_not_reused(peer):
    server = peer(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000), reply(OK))
    response = outbound.send("GET", server.url(), max_response_bytes=10)
    assert (response.body, response.truncated) == (b"x" * 10, True)
    assert outbound.send("GET", server.url()).body == b"ok"
    assert [number for number, _ in server.requests] == [1, 2]


def test_a_head_answer_ends_with_its_headers(peer):
    server = peer(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"))
    response = outbound.send("HEAD", server.url(), timeout=5)
    assert (response.status_code, response.body, response.header("content-length")) == (200, b"", "50")


def test_an_interim_answer_is_passed_over(peer):
    server = peer(reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"))
    response = outbound.send("POST", server.url(), content=b"{}")
    assert (response.status_code, response.body) == (201, b"done")


def test_headers_past_the_bound_are_refused(peer):
    huge = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 1000) for n in range(80)) + b"\r\n"
    server = peer(reply(huge))
    with pytest.raises(outbound.OutboundConnectionError, match="headers are larger than"):
        outbound.send("GET", server.url())


def test_an_answer_that_is_not_http_is_a_connection_error(peer):
    server = peer(reply(b"SSH-2.0-OpenSSH_9.2\r\n"))
    with pytest.raises(outbound.OutboundConnectionError, match=r"not a readable HTTP/1\.1 response"):
        outbound.send("GET", server.url())


def test_a_closed_kept_alive_connection_is_replaced_for_an_idempotent_request_only(peer):
    server = peer(reply(OK), lambda request: None, reply(OK), lambda request: None)
    assert outbound.send("GET", server.url()).body == b"ok"
    # The peer drops the kept-alive connection on the next request: a GET is sent again on a new one.
    assert outbound.send("GET", server.url()).body == b"ok"
    assert [number for number, _ in server.requests] == [1, 1, 2]
    # A POST is not (it may have been acted on): its caller decides.
    with pytest.raises(outbound.OutboundConnectionError, match="closed before the response was complete"):
        outbound.send("POST", server.url(), content=b"x")
    assert len(server.requests) == 4


def test_the_request_carries_exactly_our_headers_and_the_callers(peer):
    server = peer(reply(OK))
    outbound.send("POST", server.url("/p?q=1"), content=b"{}", headers={"Content-Type": "application/json"})
    [(_, raw)] = server.requests
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /p?q=1 HTTP/1.1"
    assert sorted(line.split(b":")[0].lower() for line in lines[1:]) == [
        b"accept-encoding",
        b"content-length",
        b"content-type",
        b"host",
        b"user-agent",
    ]
    assert body == b"{}"


@pytest.mark.parametrize("value", ["a\r\nInjected: yes", "a\nb", "nul\x00"])
def test_a_header_value_that_would_break_the_request_is_not_sent(peer, value):
    server = peer(reply(OK))
    with pytest.raises(outbound.InvalidDestination, match="line break or NUL"):
        outbound.send("GET", server.url(), headers={"X-Value": value})
    assert server.requests == []


def test_a_request_head_names_a_non_default_port_and_brackets_ipv6():
    from yarl import URL

    assert http1.request_head("GET", URL("http://[::1]:8080/x"), [], None).startswith(
        b"GET /x HTTP/1.1\r\nHost: [::1]:8080\r\n"
    )
    assert b"Host: example.org\r\n" in http1.request_head("GET", URL("https://example.org/"), [], None)


def test_a_header_that_never_ends_is_cut_short_not_buffered(peer):
    endless = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (3 * http1.MAX_HEAD_BYTES)
    server = peer(reply(endless))
    with pytest.raises(outbound.OutboundConnectionError, match="head is longer than"):
        outbound.send("GET", server.url(), timeout=5)


def test_chunk_framing_without_end_is_bounded_too(peer):
    endless = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=" + b"e" * (2 * 1024 * 1024)
    server = peer(reply(endless))
    with pytest.raises(outbound.OutboundConnectionError, match="bytes of framing"):
        outbound.send("GET", server.url(), max_response_bytes=1000, timeout=5)


def test_an_upgrade_answer_is_refused_cleanly(peer):
    server = peer(reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nhello"))
    with pytest.raises(outbound.OutboundConnectionError, match="HttpParserUpgrade"):
        outbound.send("GET", server.url())


def test_a_second_answer_to_one_request_is_not_mixed_into_the_first(peer):
    two = OK + b"HTTP/1.1 200 OK\r\nX-Leftover: yes\r\nContent-Length: 5\r\n\r\nsecnd"
    server = peer(reply(two), reply(OK))
    first = outbound.send("GET", server.url())
    assert first.header("x-leftover") is None
    assert outbound.send("GET", server.url()).body == b"ok"
    assert [number for number, _ in server.requests] == [1, 2]  # the connection that spoke twice was dropped


@pytest.mark.parametrize("method", ["GET / HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", "GE T", ""])
def test_a_method_that_is_not_a_token_is_not_sent(peer, method):
    server = peer(reply(OK))
    with pytest.raises(outbound.InvalidDestination, match="is not a method"):
        outbound.send(method, server.url())
    assert server.requests == []
