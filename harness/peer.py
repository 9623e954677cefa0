"""A recording HTTP peer: a real local HTTP server that records every request and answers as told.

It stands in for the service's peers (the message sender, the identity store, job
targets). One threaded server (pytest-httpserver, werkzeug) answers every path through
`RecordingPeer.handle`, which records each request (with its key: the `Idempotency-Key`
the message sender receives, or the `Job-Delivery-Id` a job target receives) and
behaves as the caller has set it to: answer at once, after a delay, never (hang until
released), or fail the first attempts of each key. `local_server()` gives the bare
server (a `LocalServer`), for tests that set their expectations with pytest-httpserver's
own API; one shared by several tests is `reset()` between them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .waiting import HOST, wait_until

# Longest a hanging request is held when it is never released.
HANG_LIMIT = 60.0

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request received


class LocalServer(HTTPServer):
    """pytest-httpserver's server, which also knows how many requests it is answering right now.

    The server logs a request only once its handler has answered it. A request its client
    gave up on (a timeout shorter than the handler's delay) is still being answered after
    the test that made it has ended, and would be logged among the next test's requests
    if the log were cleared meanwhile: `reset()` first waits for every answer."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._answering: Counter[str] = Counter()  # path -> requests being answered
        self._answered = threading.Condition()

    def application(self, request: Request) -> Response:
        with self._answered:
            self._answering[request.path] += 1
        try:
            return super().application(request)  # answered, then logged
        finally:
            with self._answered:
                self._answering[request.path] -= 1
                if not self._answering[request.path]:
                    del self._answering[request.path]
                self._answered.notify_all()

    def answering(self) -> Counter[str]:
        """The requests being answered right now, by path."""
        with self._answered:
            return Counter(self._answering)

    def wait_idle(self, timeout: float = HANG_LIMIT) -> None:
        """Wait until no request is being answered; TimeoutError naming the paths after `timeout` s."""
        with self._answered:
            if not self._answered.wait_for(lambda: not self._answering, timeout=timeout):
                raise TimeoutError(
                    f"{self.url_for('/')} was still answering {dict(self._answering)} after {timeout:g} s."
                )

    def reset(self, timeout: float = HANG_LIMIT) -> None:
        """Once every request received has been answered (and logged): no handler, no log, no errors."""
        self.wait_idle(timeout)
        self.clear()


@contextlib.contextmanager
def local_server() -> Iterator[LocalServer]:
    """A started HTTP server on 127.0.0.1 (answering requests concurrently), stopped on leaving."""
    server = LocalServer(host=HOST, port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@dataclass
class Behaviour:
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # hold the request until released (or HANG_LIMIT)
    fail_first: int = 0  # answer 503 to the first attempts of each key
    status: int = 201
    match: bytes = b""  # applies to the requests whose body holds this (the last one set that matches wins)


@dataclass
class Received:
    method: str
    path: str
    key: str
    at: float
    body: bytes
    headers: dict[str, str]  # names in lower case


@dataclass
class PathLog:
    requests: list[Received] = field(default_factory=list)
    open: int = 0  # requests being held right now


class RecordingPeer:
    """Answers `status` with `{"id": ...}` to every request, unless `behave` says otherwise for its path."""

    def __init__(self, status: int = 200):
        self.status = status
        self.server = HTTPServer(host=HOST, port=0, threaded=True)
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.behaviours: dict[str, list[Behaviour]] = {}
        self.logs: dict[str, PathLog] = {}
        self.server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    def start(self) -> RecordingPeer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.clear()
        self.server.stop()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.port}"

    def behave(self, path: str, **behaviour) -> None:
        """How to answer requests to `path` (those whose body holds `match`, when given)."""
        with self.lock:
            self.behaviours.setdefault(path, []).append(Behaviour(**behaviour))

    def unhang(self, path: str, **behaviour) -> None:
        """Let every held request go, and answer requests to `path` as `behaviour` says from now on."""
        with self.lock:
            self.behaviours[path] = [Behaviour(**behaviour)]
            release, self.release = self.release, threading.Event()
        release.set()

    def reset(self) -> None:
        with self.lock:
            self.behaviours.clear()
            self.logs.clear()
        self.release.set()
        self.release = threading.Event()

    # --- what was received ---------------------------------------------------

    def received(self, path: str | None = None) -> list[Received]:
        """The requests to `path` (to any path when None), in the order they arrived."""
        with self.lock:
            if path is not None:
                return list(self.logs.get(path, PathLog()).requests)
            every = [request for log in self.logs.values() for request in log.requests]
        return sorted(every, key=lambda request: request.at)

    def count(self, path: str) -> int:
        with self.lock:
            return len(self.logs.get(path, PathLog()).requests)

    def holding(self, path: str) -> int:
        with self.lock:
            return self.logs.get(path, PathLog()).open

    def keys(self, path: str) -> Counter:
        return Counter(request.key for request in self.received(path))

    def matching(self, matches: Callable[[Received], bool]) -> list[Received]:
        return [request for request in self.received() if matches(request)]

    def wait_for(self, matches: Callable[[Received], bool], *, timeout: float, what: str = "") -> Received:
        """The first request received for which `matches` holds, waiting up to `timeout` seconds for it."""
        found = wait_until(lambda: self.matching(matches), what=what or "a matching request", timeout=timeout)
        return found[0]

    # --- answering -----------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        key = request.headers.get("Idempotency-Key") or request.headers.get("Job-Delivery-Id") or ""
        body = request.get_data()
        headers = {name.lower(): value for name, value in request.headers.items()}
        with self.lock:
            chosen = [rule for rule in self.behaviours.get(path, []) if rule.match in body]
            behaviour = chosen[-1] if chosen else Behaviour(status=self.status)
            log = self.logs.setdefault(path, PathLog())
            attempt = sum(1 for seen in log.requests if seen.key == key) + 1
            log.requests.append(Received(request.method, path, key, time.time(), body, headers))
            log.open += 1
            release = self.release
        try:
            if behaviour.hang:
                release.wait(HANG_LIMIT)
            elif behaviour.delay:
                time.sleep(behaviour.delay)
        finally:
            with self.lock:
                log.open -= 1
        if attempt <= behaviour.fail_first:
            return Response("try again", status=503)
        answer = json.dumps({"id": str(uuid.uuid4())})
        return Response(answer, status=behaviour.status, content_type="application/json")
