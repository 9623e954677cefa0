from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.authentication import atoken_authenticate
from accounts.models import ApiToken
from core.errors import AuthenticationError

pytestmark = pytest.mark.django_db

TOKENS_URL = "/api/v1/tokens/"


@pytest.mark.parametrize(
    ("header", "query"),
    [
        ("Token {raw}", ""),
        ("token {raw}", ""),
        ("Bearer {raw}", ""),
        ("{raw}", ""),
        (None, "?token={raw}"),
        (None, "?apikey={raw}"),
    ],
)
def test_it_accepts_every_token_form(make_token, header, query):
    token, raw = make_token("tokens:mint")
    client = APIClient()
    extra = {"HTTP_AUTHORIZATION": header.format(raw=raw)} if header else {}
    response = client.get(TOKENS_URL + query.format(raw=raw), **extra)
    assert response.status_code == 200, response.content
    assert [item["id"] for item in response.json()] == [token.pk]


def test_it_asks_for_credentials_when_none_are_given(api):
    response = api().get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == "Token"


def test_it_rejects_an_unknown_token(api):
    response = api("0" * 40).get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_it_rejects_an_unreadable_authorization_header(make_token):
    _, raw = make_token("tokens:mint")
    response = APIClient().get(TOKENS_URL, HTTP_AUTHORIZATION=f"Basic {raw}")
    assert response.status_code == 401
    assert "must be 'Token <token>'" in response.json()["detail"]


def test_it_rejects_an_expired_token(make_token, api):
    _, raw = make_token("tokens:mint", expires_at=timezone.now() - timedelta(seconds=1))
    response = api(raw).get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired."}


def test_a_token_works_until_it_expires(make_token, api):
    _, raw = make_token("tokens:mint", expires_at=timezone.now() + timedelta(minutes=5))
    assert api(raw).get(TOKENS_URL).status_code == 200


def test_it_rejects_a_revoked_token(make_token, api):
    token, raw = make_token("tokens:mint")
    services.token_revoke(token=token)
    response = api(raw).get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has been revoked."}


def test_it_rejects_the_token_of_an_inactive_user(make_token, api):
    token, raw = make_token("tokens:mint")
    token.user.is_active = False
    token.user.save()
    response = api(raw).get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "The token's user is inactive."}


def test_the_secret_is_stored_only_as_a_digest(make_token):
    token, raw = make_token()
    stored = ApiToken.objects.values().get(pk=token.pk)
    assert raw not in str(stored)
    assert stored["prefix"] == raw[:8]
    assert len(raw) == 40


def test_use_is_recorded_at_most_once_per_interval(make_token, api, settings):
    settings.TOKEN_LAST_USED_INTERVAL = 3600
    token, raw = make_token("tokens:mint")
    assert token.last_used_at is None
    api(raw).get(TOKENS_URL)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    api(raw).get(TOKENS_URL)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first


@pytest.mark.django_db(transaction=True)
class TestAsyncAuthentication:
    """The routine the async hot paths use: the same checks, trusted briefly."""

    def test_it_accepts_a_valid_token(self, make_token):
        token, raw = make_token("cache:readonly")
        assert async_to_sync(atoken_authenticate)(raw).pk == token.pk

    def test_it_rejects_unknown_and_expired_tokens(self, make_token):
        _, raw = make_token(expires_at=timezone.now() - timedelta(seconds=1))
        with pytest.raises(AuthenticationError, match="expired"):
            async_to_sync(atoken_authenticate)(raw)
        with pytest.raises(AuthenticationError, match="Invalid token"):
            async_to_sync(atoken_authenticate)("f" * 40)

    def test_expiry_is_checked_on_every_use_even_when_trusted(self, make_token, settings):
        settings.TOKEN_CACHE_SECONDS = 3600
        _, raw = make_token(expires_at=timezone.now() + timedelta(minutes=5))
        trusted = async_to_sync(atoken_authenticate)(raw)
        trusted.expires_at = timezone.now() - timedelta(seconds=1)  # time has passed its expiry
        with pytest.raises(AuthenticationError, match="expired"):
            async_to_sync(atoken_authenticate)(raw)

    def test_a_revocation_is_seen_once_the_trusted_check_is_older_than_the_bound(self, make_token, settings):
        settings.TOKEN_CACHE_SECONDS = 3600
        token, raw = make_token()
        async_to_sync(atoken_authenticate)(raw)
        services.token_revoke(token=ApiToken.objects.get(pk=token.pk))
        assert async_to_sync(atoken_authenticate)(raw).pk == token.pk  # within the bound
        settings.TOKEN_CACHE_SECONDS = 0  # the bound has passed
        with pytest.raises(AuthenticationError, match="revoked"):
            async_to_sync(atoken_authenticate)(raw)
