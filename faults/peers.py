"""The service's HTTP peers, as real local servers: the message sender and job targets.

One threaded server (pytest-httpserver, werkzeug) answers every path through
`Peer.handle`, which records each request by its key (the `Idempotency-Key` the
message sender receives, or the `Job-Delivery-Id` a job target receives) and
behaves as the test has set it to: answer at once, after a delay, never (hang
until released), or fail the first attempts of each key.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

# Longest a hanging request is held when the test never releases it.
HANG_LIMIT = 60.0


@dataclass
class Behaviour:
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # hold the request until released (or HANG_LIMIT)
    fail_first: int = 0  # answer 503 to the first attempts of each key
    status: int = 201
    match: bytes = b""  # applies to the requests whose body holds this (the last one set that matches wins)


@dataclass
class Received:
    path: str
    key: str
    at: float
    body: bytes


@dataclass
class PathLog:
    requests: list[Received] = field(default_factory=list)
    open: int = 0  # requests being held right now


class Peer:
    def __init__(self):
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.behaviours: dict[str, list[Behaviour]] = {}
        self.logs: dict[str, PathLog] = {}
        self.server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    def start(self) -> Peer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.clear()
        self.server.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

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

    def received(self, path: str) -> list[Received]:
        with self.lock:
            return list(self.logs.get(path, PathLog()).requests)

    def count(self, path: str) -> int:
        with self.lock:
            return len(self.logs.get(path, PathLog()).requests)

    def holding(self, path: str) -> int:
        with self.lock:
            return self.logs.get(path, PathLog()).open

    def keys(self, path: str) -> Counter:
        return Counter(request.key for request in self.received(path))

    # --- answering -----------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        key = request.headers.get("Idempotency-Key") or request.headers.get("Job-Delivery-Id") or ""
        body = request.get_data()
        with self.lock:
            chosen = [rule for rule in self.behaviours.get(path, []) if rule.match in body]
            behaviour = chosen[-1] if chosen else Behaviour(status=200)
            log = self.logs.setdefault(path, PathLog())
            attempt = sum(1 for seen in log.requests if seen.key == key) + 1
            log.requests.append(Received(path, key, time.time(), body))
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
        body = json.dumps({"id": str(uuid.uuid4())})
        return Response(body, status=behaviour.status, content_type="application/json")
