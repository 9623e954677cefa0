import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.services import token_authenticate

pytestmark = pytest.mark.django_db

TOKENS_URL = "/api/v1/tokens/"
USER_TOKEN_URL = "/api/v1/user/token/"


# --- POST /api/v1/user/token/ ------------------------------------------------


def test_an_admin_token_creates_a_user_and_a_token(admin_user, make_token, api):
    _, admin_raw = make_token(user=admin_user)
    response = api(admin_raw).post(USER_TOKEN_URL, {"email": "bob@example.org"}, format="json")
    assert response.status_code == 201
    raw = response.json()["token"]
    user = User.objects.get(email="bob@example.org")
    token = ApiToken.objects.get(user=user)
    assert token.prefix == raw[:8]
    assert user.grants == [{"face": "messaging", "role": "write"}]
    assert str(token.scope_set) == "messaging:write"
    assert api(raw).get("/api/v1/messageset/").status_code == 200
    assert api(raw).get(TOKENS_URL).status_code == 403


def test_user_token_grants_a_new_user_the_scopes_asked_for(admin_user, make_token, api):
    _, admin_raw = make_token(user=admin_user)
    scopes = ["cache:readonly:news", "tokens:mint"]
    response = api(admin_raw).post(USER_TOKEN_URL, {"email": "bob@example.org", "scopes": scopes}, format="json")
    assert response.status_code == 201
    assert str(User.objects.get(email="bob@example.org").grant_set) == "cache:readonly:news, tokens:mint"
    assert str(token_authenticate(response.json()["token"]).scope_set) == "cache:readonly:news, tokens:mint"


def test_each_call_makes_a_new_token_for_the_same_user(admin_user, make_token, api):
    _, admin_raw = make_token(user=admin_user)
    first = api(admin_raw).post(USER_TOKEN_URL, {"email": "bob@example.org"}, format="json").json()["token"]
    second = api(admin_raw).post(USER_TOKEN_URL, {"email": "Bob@Example.org"}, format="json").json()["token"]
    assert first != second
    assert User.objects.filter(email__iexact="bob@example.org").count() == 1
    assert ApiToken.objects.filter(user__email="bob@example.org").count() == 2


def test_user_token_answers_without_the_trailing_slash(admin_user, make_token, api):
    _, admin_raw = make_token(user=admin_user)
    response = api(admin_raw).post(USER_TOKEN_URL.rstrip("/"), {"email": "bob@example.org"}, format="json")
    assert response.status_code == 201


def test_user_token_can_be_narrowed_but_not_widened(admin_user, make_token, api):
    _, admin_raw = make_token("messaging:admin", user=admin_user)
    narrow = api(admin_raw).post(
        USER_TOKEN_URL, {"email": "bob@example.org", "scopes": ["messaging:read"]}, format="json"
    )
    assert narrow.status_code == 201
    assert ApiToken.objects.get(user__email="bob@example.org").scopes == [{"face": "messaging", "role": "read"}]
    wide = api(admin_raw).post(
        USER_TOKEN_URL, {"email": "bob@example.org", "scopes": ["jobs:readwrite"]}, format="json"
    )
    assert wide.status_code == 403
    assert "cannot grant jobs:readwrite" in wide.json()["detail"]


def test_user_token_needs_an_admin_token(make_token, api):
    _, raw = make_token("messaging:write")
    response = api(raw).post(USER_TOKEN_URL, {"email": "bob@example.org"}, format="json")
    assert response.status_code == 403
    assert "messaging admin" in response.json()["detail"]
    assert not User.objects.filter(email="bob@example.org").exists()


def test_user_token_needs_a_token(api):
    assert api().post(USER_TOKEN_URL, {"email": "bob@example.org"}, format="json").status_code == 401


def test_user_token_needs_a_valid_email(admin_user, make_token, api):
    _, admin_raw = make_token(user=admin_user)
    response = api(admin_raw).post(USER_TOKEN_URL, {"email": "not an email"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"email": ["Enter a valid email address."]}


# --- Minting: POST /api/v1/tokens/ ---------------------------------------------


def test_a_token_mints_a_narrower_short_lived_token(make_token, api):
    parent, raw = make_token("tokens:mint", "cache:readwrite:news")
    response = api(raw).post(
        TOKENS_URL, {"scopes": ["cache:readonly:news:key_prefix=user-"], "expires_in": 600}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    minted = ApiToken.objects.get(pk=body["id"])
    assert set(body) == {"id", "authToken", "expiresAt", "scopes"}
    assert minted.prefix == body["authToken"][:8]
    assert minted.parent_id == parent.pk
    assert body["expiresAt"] == int(minted.expires_at.timestamp())
    assert 590 <= (minted.expires_at - timezone.now()).total_seconds() <= 600
    assert str(minted.scope_set) == "cache:readonly:news:key_prefix=user-"


def test_scopes_may_be_given_as_objects(make_token, api):
    _, raw = make_token("tokens:mint", "topics:publishsubscribe:chat")
    scope = {"face": "topics", "role": "subscribeonly", "cache": "chat", "topic": "room-1"}
    response = api(raw).post(TOKENS_URL, {"scopes": [scope]}, format="json")
    assert response.status_code == 201
    assert response.json()["scopes"] == [scope]


def test_a_minted_token_lives_the_default_lifetime_when_not_told(make_token, api, settings):
    settings.TOKEN_MINT_DEFAULT_LIFETIME = 120
    _, raw = make_token("tokens:mint", "jobs:readonly")
    body = api(raw).post(TOKENS_URL, {"scopes": ["jobs:readonly"]}, format="json").json()
    lifetime = ApiToken.objects.get(pk=body["id"]).expires_at - timezone.now()
    assert 110 <= lifetime.total_seconds() <= 120


def test_minting_more_than_you_hold_is_forbidden_and_says_what(make_token, api):
    _, raw = make_token("tokens:mint", "cache:readonly:news")
    response = api(raw).post(TOKENS_URL, {"scopes": ["cache:readwrite:news", "cache:readonly:news"]}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"].startswith("This token cannot mint cache:readwrite:news:")
    assert ApiToken.objects.count() == 1


def test_minting_past_the_lifetime_cap_is_a_bad_request(make_token, api, settings):
    settings.TOKEN_MINT_MAX_LIFETIME = 3600
    _, raw = make_token("tokens:mint", "jobs:readonly")
    response = api(raw).post(TOKENS_URL, {"scopes": ["jobs:readonly"], "expires_in": 3601}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "expires_in": ["A minted token may live at most 3600 seconds (TOKEN_MINT_MAX_LIFETIME)."]
    }


def test_a_minted_token_never_outlives_its_parent(make_token, api):
    parent_expiry = timezone.now() + timedelta(seconds=300)
    _, raw = make_token("tokens:mint", "jobs:readonly", expires_at=parent_expiry)
    body = api(raw).post(TOKENS_URL, {"scopes": ["jobs:readonly"], "expires_in": 3600}, format="json").json()
    assert ApiToken.objects.get(pk=body["id"]).expires_at == parent_expiry


def test_minting_needs_the_mint_scope(make_token, api):
    _, raw = make_token("cache:readwrite")
    response = api(raw).post(TOKENS_URL, {"scopes": ["cache:readonly"]}, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "This token does not allow tokens mint: it needs a tokens scope with role mint."
    )


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "scopes", "This field is required."),
        ({"scopes": []}, "scopes", "This list may not be empty."),
        ({"scopes": "jobs:readonly"}, "scopes", 'Expected a list of items but got type "str".'),
        ({"scopes": ["jobs:everything"]}, "scopes", "Unknown jobs role 'everything': use one of readwrite, readonly."),
        (
            {"scopes": ["jobs:readonly"], "expires_in": 0},
            "expires_in",
            "Ensure this value is greater than or equal to 1.",
        ),
    ],
)
def test_a_bad_mint_request_says_what_is_wrong(make_token, api, body, field, message):
    _, raw = make_token("tokens:mint", "jobs:readonly")
    response = api(raw).post(TOKENS_URL, body, format="json")
    assert response.status_code == 400
    assert response.json()[field] == [message]


def test_an_expired_minted_token_is_refused(make_token, api):
    _, raw = make_token("tokens:mint", "jobs:readonly")
    body = api(raw).post(TOKENS_URL, {"scopes": ["tokens:mint"], "expires_in": 60}, format="json").json()
    assert api(body["authToken"]).get(TOKENS_URL).status_code == 200
    ApiToken.objects.filter(pk=body["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api(body["authToken"]).get(TOKENS_URL)
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired."}


def test_revoking_a_token_revokes_what_it_minted(make_token, api):
    parent, raw = make_token("tokens:mint", "jobs:readonly")
    child = api(raw).post(TOKENS_URL, {"scopes": ["tokens:mint", "jobs:readonly"]}, format="json").json()
    grandchild = api(child["authToken"]).post(TOKENS_URL, {"scopes": ["jobs:readonly"]}, format="json").json()
    response = api(raw).delete(f"{TOKENS_URL}{parent.pk}/")
    assert response.status_code == 204
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 0
    assert api(grandchild["authToken"]).get(TOKENS_URL).status_code == 401


# --- Listing and revoking: owner, member, outsider --------------------------


def test_a_token_lists_itself_and_what_it_minted_without_secrets(make_token, api):
    owner_token, raw = make_token("tokens:mint", "jobs:readonly", name="deploy")
    make_token("jobs:readonly", user=owner_token.user, name="sibling")
    child = api(raw).post(TOKENS_URL, {"scopes": ["jobs:readonly"], "name": "child"}, format="json").json()
    response = api(raw).get(TOKENS_URL)
    assert response.status_code == 200
    listed = response.json()
    assert [item["id"] for item in listed] == [child["id"], owner_token.pk]
    assert listed[1]["name"] == "deploy" and listed[1]["status"] == "active"
    assert "digest" not in listed[1] and raw not in response.content.decode()


@pytest.fixture
def scopes() -> tuple[str, ...]:
    """The owner and the outsider may mint tokens; the member (another token of the owner's) only reads."""
    return ("tokens:mint",)


def test_the_owner_revokes_a_token_it_minted(owner, api):
    child = api(owner.raw).post(TOKENS_URL, {"scopes": ["tokens:mint"]}, format="json").json()
    assert api(owner.raw).delete(f"{TOKENS_URL}{child['id']}").status_code == 204
    assert api(child["authToken"]).get(TOKENS_URL).status_code == 401
    assert api(owner.raw).get(f"{TOKENS_URL}{child['id']}/").json()["status"] == "revoked"


def test_a_token_neither_sees_nor_revokes_its_users_other_tokens(owner, make_token, api):
    sibling, sibling_raw = make_token("tokens:mint", user=owner.user)
    assert api(owner.raw).get(f"{TOKENS_URL}{sibling.pk}/").status_code == 404
    assert api(owner.raw).delete(f"{TOKENS_URL}{sibling.pk}/").status_code == 404
    assert api(sibling_raw).get(TOKENS_URL).status_code == 200


def test_a_member_token_without_the_mint_scope_may_not_manage_tokens(owner, member, api):
    response = api(member.raw).delete(f"{TOKENS_URL}{owner.token.pk}/")
    assert response.status_code == 403
    assert "tokens scope with role mint" in response.json()["detail"]
    assert api(member.raw).get(TOKENS_URL).status_code == 403


def test_an_outsider_neither_sees_nor_revokes_anothers_tokens(owner, outsider, api):
    assert api(outsider.raw).get(f"{TOKENS_URL}{owner.token.pk}/").status_code == 404
    assert api(outsider.raw).delete(f"{TOKENS_URL}{owner.token.pk}/").status_code == 404
    assert owner.token.pk not in [item["id"] for item in api(outsider.raw).get(TOKENS_URL).json()]
    owner.token.refresh_from_db()
    assert owner.token.revoked_at is None


# --- A token manages only itself and what it minted --------------------------


def test_a_narrow_minted_token_sees_and_revokes_only_its_own_line(make_token, api):
    parent, raw = make_token()
    broad, _ = make_token(user=parent.user)
    child = api(raw).post(TOKENS_URL, {"scopes": ["tokens:mint", "cache:readonly:news:key=zzz"]}, format="json")
    narrow = api(child.json()["authToken"])
    grandchild = narrow.post(TOKENS_URL, {"scopes": ["cache:readonly:news:key=zzz"]}, format="json").json()

    assert [item["id"] for item in narrow.get(TOKENS_URL).json()] == [grandchild["id"], child.json()["id"]]
    for other in (parent.pk, broad.pk):
        assert narrow.get(f"{TOKENS_URL}{other}/").status_code == 404
        assert narrow.delete(f"{TOKENS_URL}{other}/").status_code == 404
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()
    assert narrow.delete(f"{TOKENS_URL}{grandchild['id']}/").status_code == 204
    listed = {item["id"] for item in api(raw).get(TOKENS_URL).json()}
    assert listed == {parent.pk, child.json()["id"], grandchild["id"]}


def test_a_superusers_token_too_sees_only_itself_and_what_it_minted(admin_user, make_token, api):
    token, raw = make_token(user=admin_user)
    sibling, _ = make_token(user=admin_user)
    assert [item["id"] for item in api(raw).get(TOKENS_URL).json()] == [token.pk]
    assert api(raw).delete(f"{TOKENS_URL}{sibling.pk}/").status_code == 404


# --- Minting is limited per user -------------------------------------------------


MINT = (TOKENS_URL, {"scopes": ["jobs:readonly"]})


def in_one_second(requests: list) -> list:
    """The answers to `requests` ((client, url, body) each, posted in turn), all made within
    one clock second of the limit's windows (made afresh when a second's boundary fell among them)."""
    for _ in range(20):
        time.sleep(1 - time.time() % 1)  # a fresh window, counted from zero
        second = int(time.time())
        responses = [client.post(url, body, format="json") for client, url, body in requests]
        if int(time.time()) == second:
            return responses
    pytest.fail(f"{len(requests)} requests never fitted in one second")


def test_minting_is_limited_per_user_across_their_tokens(make_token, api, settings):
    settings.TOKEN_MINT_RATE_LIMIT = 2
    first, first_raw = make_token("tokens:mint", "jobs:readonly")
    _, second_raw = make_token("tokens:mint", "jobs:readonly", user=first.user)
    _, stranger_raw = make_token("tokens:mint", "jobs:readonly")
    clients = [api(first_raw), api(second_raw), api(first_raw), api(stranger_raw)]
    responses = in_one_second([(client, *MINT) for client in clients])
    assert [response.status_code for response in responses] == [201, 201, 429, 201]
    refused = responses[2]
    assert refused["Retry-After"] == "1"
    assert refused.json() == {
        "detail": "Too many tokens minted: a user may mint 2 tokens per second (TOKEN_MINT_RATE_LIMIT). "
        "Expected available in 1 second."
    }
    assert ApiToken.objects.filter(parent__isnull=False).count() == 3


def test_user_token_counts_against_the_same_limit(admin_user, make_token, api, settings):
    settings.TOKEN_MINT_RATE_LIMIT = 2
    _, raw = make_token(user=admin_user)
    user_token = (USER_TOKEN_URL, {"email": "bob@example.org"})
    responses = in_one_second([(api(raw), *MINT), (api(raw), *user_token), (api(raw), *user_token)])
    assert [response.status_code for response in responses] == [201, 201, 429]
    assert responses[2]["Retry-After"] == "1"
