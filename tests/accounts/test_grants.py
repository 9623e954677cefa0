"""What a token may do is bounded by what its user may do now: their grants, their
superuser status and their being active, at every use (the REST API at once, the
cache and topics paths within TOKEN_CACHE_SECONDS), when minting and on user/token."""

import importlib
import secrets
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.apps import apps
from django.utils import timezone

from accounts import services
from accounts.authentication import atoken_authenticate
from accounts.models import ApiToken, User, token_digest
from accounts.services import token_authenticate
from cache_api.services import cache_create
from core.errors import AuthenticationError
from tests.cache_api.conftest import CacheClient

pytestmark = pytest.mark.django_db

USER_TOKEN_URL = "/api/v1/user/token/"
TOKENS_URL = "/api/v1/tokens/"
JOBS_URL = "/jobs.json"
CACHE_URL = "/cache/news"


def regrant(user: User, *grants: str) -> None:
    user.grants = list(grants)
    user.save()


# --- A demoted superuser ------------------------------------------------------


@pytest.fixture
def demoted(make_token, api):
    """A superuser's all-scopes token, made while they were one; then they are demoted."""
    former = User.objects.create_superuser(username="former@example.org", email="former@example.org", password="x")
    token, raw = make_token(user=former)
    assert api(raw).post(USER_TOKEN_URL, {"email": "early@example.org"}, format="json").status_code == 201
    former.is_superuser = former.is_staff = False
    former.save()
    return token, raw


@pytest.mark.parametrize(
    "body",
    [
        {"email": "root@example.org"},
        {"email": "root@example.org", "scopes": ["messaging:admin"]},
        {"email": "ROOT@example.org", "scopes": ["messaging:read"]},
        {"email": "newcomer@example.org"},
    ],
)
def test_a_demoted_superusers_token_makes_no_more_user_tokens(admin_user, demoted, api, body):
    _, raw = demoted
    response = api(raw).post(USER_TOKEN_URL, body, format="json")
    assert response.status_code == 403
    assert not ApiToken.objects.filter(user=admin_user).exists()
    assert not User.objects.filter(email="newcomer@example.org").exists()


def test_a_demoted_superusers_token_does_only_what_they_are_granted(demoted, api):
    token, raw = demoted
    assert api(raw).post(TOKENS_URL, {"scopes": ["messaging:admin"]}, format="json").status_code == 403
    assert api(raw).get(JOBS_URL).status_code == 403
    regrant(token.user, "jobs:readonly")
    assert api(raw).get(JOBS_URL).status_code == 200
    assert api(raw).get("/api/v1/messageset/").status_code == 403


def test_an_admin_by_grant_acts_for_no_one_who_may_do_more(admin_user, make_token, api):
    _, raw = make_token("messaging:admin")
    make_token("jobs:readwrite", user=User.objects.create_user(username="jobs@example.org", email="jobs@example.org"))
    for email in ("root@example.org", "jobs@example.org"):
        response = api(raw).post(USER_TOKEN_URL, {"email": email, "scopes": ["messaging:read"]}, format="json")
        assert response.status_code == 403
        assert "who may do more than it" in response.json()["detail"]
    assert not ApiToken.objects.filter(user__email="root@example.org").exists()
    created = api(raw).post(USER_TOKEN_URL, {"email": "new@example.org", "scopes": ["messaging:read"]}, format="json")
    assert created.status_code == 201


def test_user_token_adds_what_it_grants_to_an_existing_user(admin_user, make_token, api):
    _, admin_raw = make_token(user=admin_user)
    bob = User.objects.create_user(username="bob", email="bob@example.org", grants=["jobs:readonly"])
    response = api(admin_raw).post(USER_TOKEN_URL, {"email": "bob@example.org"}, format="json")
    assert response.status_code == 201
    bob.refresh_from_db()
    assert str(bob.grant_set) == "jobs:readonly, messaging:write"
    assert str(token_authenticate(response.json()["token"]).scope_set) == "messaging:write"


# --- Grants bound every token at every use -------------------------------------


def test_narrowing_a_users_grants_narrows_their_tokens_on_the_rest_api(make_token, api):
    token, raw = make_token("jobs:readwrite")
    job = {"job": {"uri": "http://example.org/", "at": "2100-01-01T00:00:00Z"}}
    regrant(token.user, "jobs:readonly")
    assert api(raw).get(JOBS_URL).status_code == 200
    response = api(raw).post(JOBS_URL, job, format="json")
    assert response.status_code == 403
    regrant(token.user)
    assert api(raw).get(JOBS_URL).status_code == 403


def test_minting_is_bounded_by_the_users_grants_now(make_token, api):
    token, raw = make_token("tokens:mint", "cache:readwrite")
    child = api(raw).post(TOKENS_URL, {"scopes": ["cache:readwrite:news"]}, format="json").json()
    regrant(token.user, "tokens:mint", "cache:readonly")
    refused = api(raw).post(TOKENS_URL, {"scopes": ["cache:readwrite:news"]}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("This token cannot mint cache:readwrite:news:")
    assert api(raw).post(TOKENS_URL, {"scopes": ["cache:readonly:news"]}, format="json").status_code == 201
    assert str(token_authenticate(child["authToken"]).scope_set) == "cache:readonly:news"


def test_the_hot_paths_see_a_narrowed_grant_within_the_token_cache_bound(make_token, settings):
    settings.TOKEN_CACHE_SECONDS = 3600
    cache_create(name="news")
    token, raw = make_token("cache:readwrite")
    client = CacheClient(raw)
    put = {"params": {"key": "k", "ttl_seconds": "60"}, "content": b"v"}
    assert client.put(CACHE_URL, **put).status_code == 204
    regrant(token.user, "cache:readonly")
    assert client.put(CACHE_URL, **put).status_code == 204  # the trusted check, within the bound
    settings.TOKEN_CACHE_SECONDS = 0  # the bound has passed
    refused = client.put(CACHE_URL, **put)
    assert refused.status_code == 403
    assert client.get(CACHE_URL, params={"key": "k"}).status_code == 200


def test_a_deactivated_users_tokens_stop_working_on_the_hot_paths(make_token, settings):
    settings.TOKEN_CACHE_SECONDS = 3600
    token, raw = make_token("cache:readonly")
    async_to_sync(atoken_authenticate)(raw)
    User.objects.filter(pk=token.user.pk).update(is_active=False)
    settings.TOKEN_CACHE_SECONDS = 0
    with pytest.raises(AuthenticationError, match="inactive"):
        async_to_sync(atoken_authenticate)(raw)


def test_an_inactive_user_holds_nothing_and_gets_no_new_token(make_token):
    token, _ = make_token("jobs:readonly")
    token.user.is_active = False
    assert not token.user.grant_set
    with pytest.raises(services.ScopeDenied, match="inactive"):
        services.token_create(user=token.user)


# --- The upgrade: existing users are granted what their tokens allowed -------------


def make_stored_token(user: User, scopes: list, **fields) -> ApiToken:
    digest = token_digest(secrets.token_hex(8))
    return ApiToken.objects.create(user=user, prefix=digest[:8], digest=digest, scopes=scopes, **fields)


def test_the_upgrade_grants_each_user_what_their_usable_tokens_allowed():
    upgrade = importlib.import_module("accounts.migrations.0002_user_grants")
    plain = User.objects.create_user(username="plain")
    jobs = {"face": "jobs", "role": "readonly"}
    news = {"face": "cache", "role": "readonly", "cache": "news"}
    make_stored_token(plain, [jobs, news])
    make_stored_token(plain, [{"face": "messaging", "role": "admin"}, jobs])  # from before a demotion
    make_stored_token(plain, [{"face": "tokens", "role": "mint"}], revoked_at=timezone.now())
    make_stored_token(plain, [{"face": "topics", "role": "publishonly"}], expires_at=timezone.now() - timedelta(1))
    root = User.objects.create_superuser(username="root", password="x")
    make_stored_token(root, [{"face": "messaging", "role": "admin"}])
    idle = User.objects.create_user(username="idle")

    upgrade.grant_what_tokens_allowed(apps, None)

    plain.refresh_from_db()
    assert plain.grants == [jobs, news, {"face": "messaging", "role": "write"}]
    root.refresh_from_db()
    idle.refresh_from_db()
    assert root.grants == [] and str(root.grant_set).startswith("messaging:admin")
    assert idle.grants == []
