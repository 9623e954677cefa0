"""The message sender and the identity store are real HTTP servers on 127.0.0.1."""

import json
import uuid
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from core import outbound
from subscriptions import services

from .factories import MONDAY_8AM

MEDIA_BASE = "https://sbm.example.org"


@pytest.fixture(autouse=True)
def _pipeline_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SEND_MEDIA_BASE_URL = MEDIA_BASE
    settings.MESSAGE_SENDER_URL = None
    settings.MESSAGE_SENDER_TOKEN = "sender-token"
    settings.IDENTITY_STORE_URL = None
    settings.IDENTITY_STORE_TOKEN = "identity-token"
    settings.DRY_RUN_MESSAGESETS = []
    settings.SEND_RETRY_DELAYS = [0.01, 0.02]
    settings.SEND_TIMEOUT = 5
    yield
    outbound.close_clients()


class Peer:
    """A local HTTP server standing in for the message sender and the identity store."""

    def __init__(self, server: HTTPServer):
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def requests(self, path: str = "/outbound/") -> list[Request]:
        return [request for request, _ in list(self.server.log) if request.path == path]

    def payloads(self) -> list[dict]:
        return [json.loads(request.get_data()) for request in self.requests()]

    def answer(self, handler: Callable[[Request], Response]) -> None:
        """Answer POST /outbound/ with `handler` (instead of 201)."""
        self.server.clear_all_handlers()
        self.server.expect_request("/outbound/", method="POST").respond_with_handler(handler)

    def answer_in_turn(self, *responses: Response) -> None:
        """Answer POST /outbound/ with each response in turn, then 201 for ever."""
        remaining = list(responses)

        def handler(request: Request) -> Response:
            return remaining.pop(0) if remaining else accepted(request)

        self.answer(handler)

    def addresses(self, by_identity: dict[str, str | None]) -> None:
        """The identity store's answer per identity: its address, or None for none."""
        for identity, address in by_identity.items():
            results = [] if address is None else [{"address": address}]
            self.server.expect_request(f"/identities/{identity}/addresses/msisdn", method="GET").respond_with_json(
                {"count": len(results), "next": None, "previous": None, "results": results}
            )


def accepted(request: Request) -> Response:
    return Response(json.dumps({"id": str(uuid.uuid4())}), status=201, content_type="application/json")


@pytest.fixture
def sender(http_server, settings) -> Peer:
    """The message sender (answering 201 with an id), fresh for each test."""
    http_server.reset()
    peer = Peer(http_server)
    peer.answer(accepted)
    settings.MESSAGE_SENDER_URL = peer.url
    yield peer
    http_server.reset()


@pytest.fixture
def identity_store(sender, settings) -> Peer:
    """The identity store, on the same local server as the sender."""
    settings.IDENTITY_STORE_URL = sender.url
    return sender


@pytest.fixture
def fire(django_capture_on_commit_callbacks, eager_celery):
    """fire(schedule, at=MONDAY_8AM): a schedule fire, its send tasks run at once."""

    def run(schedule, at=MONDAY_8AM):
        with django_capture_on_commit_callbacks(execute=True):
            return services.schedule_send(schedule_id=schedule.pk, at=at)

    return run


@pytest.fixture
def run_queued(django_capture_on_commit_callbacks, eager_celery):
    """with run_queued(): ... runs the tasks queued inside at once, on leaving."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
