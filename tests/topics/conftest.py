import threading

import httpx
import pytest
import uvicorn

from cache_api import services
from config.asgi import application
from harness import waiting
from topics.feed import _registries


class LiveServer:
    """The whole ASGI application under uvicorn, in a thread with its own event loop."""

    def __init__(self):
        config = uvicorn.Config(application, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        waiting.wait_until(lambda: self.server.started, what="the live server to start", timeout=5, every=0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live():
    with LiveServer() as server:
        yield server


@pytest.fixture(scope="session")
def second_live():
    with LiveServer() as server:
        yield server


@pytest.fixture
def chat(transactional_db):
    cache, _ = services.cache_create(name="chat")
    return cache


@pytest.fixture
def token(transactional_db, make_token):
    """token(*scopes) -> a raw token with those scopes (default: all)."""

    def make(*scopes: str, **kwargs) -> str:
        return make_token(*scopes, **kwargs)[1]

    return make


HTTP = httpx.Client(timeout=60)  # one client: building one per request costs more than the request


def waiting_subscribers() -> int:
    """Subscribers waiting on a topic's feed in this process's live servers."""
    return sum(feed.subscribers for registry in list(_registries.values()) for feed in list(registry.values()))


def publish(base: str, raw: str, body: bytes | str, *, topic: str = "room", content_type: str = "text/plain"):
    return HTTP.post(
        f"{base}/topics/chat/{topic}",
        content=body,
        headers={"Authorization": raw, "Content-Type": content_type},
    )


def poll(base: str, raw: str, *, topic: str = "room", **params) -> httpx.Response:
    return HTTP.get(f"{base}/topics/chat/{topic}", params={"token": raw, **params})


class EventStream:
    """Reads a Server-Sent Events stream in a thread, collecting its events."""

    def __init__(self, url: str, headers: dict | None = None):
        self.url, self.headers = url, {"Accept": "text/event-stream", **(headers or {})}
        self.events: list[dict] = []
        self.comments: list[str] = []
        self.status: int | None = None
        self.ended = threading.Event()
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _read(self) -> None:
        event: dict = {}
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as response:
                self.status = response.status_code
                self.opened.set()
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    elif not line:
                        if event:
                            self.events.append(event)
                        event = {}
                    else:
                        name, _, value = line.partition(":")
                        event[name] = value.lstrip(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def wait_for(self, count: int, timeout: float = 10) -> list[dict]:
        """The events so far, once there are `count` of them, the stream ended, or `timeout` passed."""
        waiting.poll(lambda: len(self.events) >= count or self.ended.is_set(), timeout=timeout, every=0.01)
        return self.events

    def wait_for_comment(self, text: str, timeout: float = 10) -> bool:
        return waiting.poll(lambda: text in self.comments, timeout=timeout, every=0.01)
