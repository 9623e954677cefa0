import inspect
from dataclasses import dataclass

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from accounts import services
from accounts.authentication import forget_recent_tokens
from accounts.models import ApiToken, User
from accounts.scopes import ScopeSet, all_scopes
from cache_api.selectors import forget_known_caches
from core.redis import get_redis
from harness.peer import local_server
from harness.waiting import free_port
from subscriptions.events import forget_events_topic
from tests.worker import running_worker

# The prefix of the test broker's keys: none when the broker is RabbitMQ, which keeps nothing in Redis.
BROKER_PREFIXES = tuple(
    prefix.encode() for prefix in [settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix")] if prefix
)


def _unreachable(what: str, where: str, how: str) -> None:
    pytest.exit(f"{what} at {where} is not reachable. {how}", returncode=3)


def pytest_sessionstart(session) -> None:
    """Say clearly what to start when PostgreSQL or Redis is not there."""
    database = settings.DATABASES["default"]
    try:
        import psycopg

        psycopg.connect(
            host=database["HOST"] or None,
            port=database["PORT"] or None,
            user=database["USER"] or None,
            password=database["PASSWORD"] or None,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except Exception as error:
        _unreachable(
            "PostgreSQL",
            f"{database['HOST']}:{database['PORT']}",
            f"Start it (e.g. pg_ctlcluster <version> main start) or set DATABASE_URL. ({error})",
        )
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        _unreachable(
            "Redis",
            settings.REDIS_URL,
            f'Start it (e.g. redis-server --daemonize yes --save "") or set REDIS_URL. ({error})',
        )


def _forget_trusted_lookups() -> None:
    forget_recent_tokens()
    forget_known_caches()
    forget_events_topic()


@pytest.fixture(autouse=True)
def _fresh_state():
    """Each test starts with no data in the test Redis database (the Celery broker's
    keys excepted) and no trusted token or cache lookups."""
    client = get_redis()
    stale = [key for key in client.scan_iter(count=1000) if not key.startswith(BROKER_PREFIXES)]
    if stale:
        client.delete(*stale)
    _forget_trusted_lookups()
    yield
    _forget_trusted_lookups()


@pytest.fixture
def celery_worker():
    """A real Celery worker (in a thread of this process) on the test broker, for one test."""
    with running_worker():
        yield


@pytest.fixture
def make_token(db):
    """make_token(*scopes, user=None, **kwargs) -> (token, raw secret).

    The user (a new one when None) is granted the scopes first; without scopes, a
    plain user is granted every face's widest scope but messaging admin."""

    def make(*scopes: str, user: User | None = None, **kwargs):
        if user is None:
            user = User.objects.create_user(username=f"user{User.objects.count() + 1}@example.org")
        scope_set = ScopeSet.parse(scopes) if scopes else None
        if not user.is_superuser:
            services.user_grant(user=user, scopes=scope_set or all_scopes(admin=False))
        return services.token_create(user=user, scopes=scope_set, **kwargs)

    return make


@dataclass
class Person:
    """A user and one token of theirs with its raw secret; unpacks as (user, raw)."""

    user: User
    token: ApiToken
    raw: str

    def __iter__(self):
        return iter((self.user, self.raw))


@pytest.fixture
def scopes() -> tuple[str, ...]:
    """The scopes of the owner's and the outsider's tokens (a test module or app overrides it)."""
    return ("messaging:write",)


@pytest.fixture
def member_scopes() -> tuple[str, ...]:
    """The scopes of the member's token: fewer than the owner's (a test module or app overrides it)."""
    return ("messaging:read",)


@pytest.fixture
def owner(make_token, scopes) -> Person:
    """A user with a token holding `scopes`."""
    token, raw = make_token(*scopes)
    return Person(token.user, token, raw)


@pytest.fixture
def member(make_token, owner, member_scopes) -> Person:
    """Another token of the owner's account, holding only `member_scopes`."""
    token, raw = make_token(*member_scopes, user=owner.user)
    return Person(token.user, token, raw)


@pytest.fixture
def outsider(make_token, scopes) -> Person:
    """Another user, with a token holding the same `scopes` as the owner's."""
    token, raw = make_token(*scopes)
    return Person(token.user, token, raw)


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser(username="root@example.org", email="root@example.org", password="x")


@pytest.fixture
def api():
    """api(raw_token=None) -> a DRF client sending `Authorization: Token <raw>`."""

    def client(raw: str | None = None) -> APIClient:
        api_client = APIClient()
        if raw is not None:
            api_client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        return api_client

    return client


@pytest.fixture
def eager_celery():
    """Tasks run in the calling process (for tests about something other than the workers)."""
    from config.celery import app as celery_app

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def writer(make_token, api):
    """A client whose token may read and change through the messaging API."""
    _, raw = make_token("messaging:write")
    return api(raw)


@pytest.fixture
def reader(make_token, api):
    """A client whose token may only read through the messaging API."""
    _, raw = make_token("messaging:read")
    return api(raw)


@pytest.fixture
def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    return free_port()


@pytest.fixture
def seed_client(live_server, make_token, settings):
    """The client in the field, `seed-services-client`, against a live server, with a messaging:write token.

    Every list spans several pages (API_PAGE_SIZE 2). Its HTTP library (`demands`) still
    calls `inspect.getargspec`, which Python 3.11 removed; the client's own calls are unchanged.
    """
    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = inspect.getfullargspec
    from seed_services_client import StageBasedMessagingApiClient

    settings.API_PAGE_SIZE = 2
    _, raw = make_token("messaging:write")
    return StageBasedMessagingApiClient(raw, f"{live_server.url}/api/v1")


@pytest.fixture(scope="session")
def http_server():
    """A real HTTP server on 127.0.0.1 (pytest-httpserver) for the tests' peers, shared by the session: each
    test that uses it `reset()`s it before and after, which waits for the requests it is still answering."""
    with local_server() as server:
        yield server
