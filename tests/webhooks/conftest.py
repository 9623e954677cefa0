"""Webhooks are fed by real topics in Redis and delivered by the jobs engine to real local HTTP
servers, on the jobs tests' manual clock."""

import asyncio
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook, WebhookVerificationError

from accounts.models import User
from cache_api import services as cache_services
from core import outbound
from jobs import clock as job_clock
from jobs.dispatcher import dispatch_once
from tests.jobs.conftest import START
from topics.store import TopicRef, topic_publish
from webhooks.relay import relay_once

URL = "/api/v1/caches/news/webhooks/"
WEBHOOK_SCOPES = ("topics:publishsubscribe:news", "jobs:readwrite")


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    """Receivers are local servers, reached as development reaches them (the SSRF tests undo it)."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.JOBS_SIGNING_KEY = "current-signing-key-for-tests"
    settings.JOBS_SIGNING_NEXT_KEY = None
    yield
    outbound.close_clients()


@pytest.fixture
def clock():
    manual = job_clock.ManualClock(START)
    with job_clock.using(manual):
        yield manual


@pytest.fixture
def news(db):
    cache, _ = cache_services.cache_create(name="news")
    return cache


@pytest.fixture
def scopes() -> tuple[str, ...]:
    return WEBHOOK_SCOPES


@pytest.fixture
def receiver(http_server) -> HTTPServer:
    """A real HTTP server on 127.0.0.1, fresh for each test."""
    http_server.clear()
    http_server.clear_all_handlers()
    yield http_server
    http_server.clear_all_handlers()


def publish(cache, topic: str, value: bytes, *, binary: bool = False) -> tuple[int, int]:
    """Publish as the topics face does; (page, sequence number)."""
    user = User.objects.first()
    ref = TopicRef(cache_id=cache.pk, cache_name=cache.name, name=topic)
    return asyncio.run(topic_publish(topic=ref, user_id=user.pk, value=value, binary=binary))


@pytest.fixture
def relay_and_send(django_capture_on_commit_callbacks, eager_celery, clock) -> Callable[[], int]:
    """One relay pass, then the due jobs dispatched and sent at once (eager); how many were sent."""

    def run() -> int:
        relay_once()
        with django_capture_on_commit_callbacks(execute=True):
            return dispatch_once()

    return run


def verifies(secret: str, request) -> bool:
    """Whether a Standard Webhooks receiver holding `secret` accepts the request."""
    try:
        Webhook(secret).verify(request.get_data(), dict(request.headers), json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def received(receiver, path: str = "/hook") -> list:
    """The requests `receiver` got on `path`, in order."""
    return [request for request, _ in list(receiver.log) if request.path == path]
