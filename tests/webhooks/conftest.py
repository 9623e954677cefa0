"""Webhooks are fed by real topics in Redis and delivered by the jobs engine to real local HTTP
servers, on the jobs tests' manual clock."""

import asyncio
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook, WebhookVerificationError

from accounts.models import User
from cache_api import services as cache_services
from jobs.dispatcher import dispatch_once
from tests.jobs import conftest as jobs_tests
from topics.store import TopicRef, topic_publish
from webhooks.relay import relay_once

# The jobs tests' fixtures: loopback allowed, their manual clock, a local HTTP server.
_loopback_allowed, clock, target = jobs_tests._loopback_allowed, jobs_tests.clock, jobs_tests.target

URL = "/api/v1/caches/news/webhooks/"
WEBHOOK_SCOPES = ("topics:publishsubscribe:news", "jobs:readwrite")


@pytest.fixture
def news(db):
    cache, _ = cache_services.cache_create(name="news")
    return cache


@pytest.fixture
def scopes() -> tuple[str, ...]:
    return WEBHOOK_SCOPES


@pytest.fixture
def receiver(target) -> HTTPServer:
    """Where webhooks deliver: the jobs tests' local HTTP server, fresh for each test."""
    return target


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
