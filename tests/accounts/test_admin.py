import re

import pytest

from accounts.models import ApiToken, User
from accounts.services import token_authenticate

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/accounts/apitoken/add/"
LIST_URL = "/admin/accounts/apitoken/"


def test_the_admin_creates_a_token_and_shows_the_secret_once(admin_client):
    member = User.objects.create_user(username="member@example.org")
    member.grants = ["messaging:write", "cache:readonly:news"]
    member.save()
    response = admin_client.post(
        ADD_URL,
        {
            "user": member.pk,
            "name": "reporting",
            "scope_lines": "messaging:read\ncache:readonly:news",
            "expires_at_0": "",
            "expires_at_1": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    raw = re.search(r"Token created: ([0-9a-f]{40})", page).group(1)
    token = token_authenticate(raw)
    assert token.user == member and token.name == "reporting"
    assert str(token.scope_set) == "messaging:read, cache:readonly:news"
    assert raw not in admin_client.get(LIST_URL).content.decode()
    assert raw not in admin_client.get(f"{LIST_URL}{token.pk}/change/").content.decode()


def test_the_admin_refuses_a_bad_scope_line(admin_client):
    member = User.objects.create_user(username="member@example.org", grants=["messaging:write"])
    response = admin_client.post(ADD_URL, {"user": member.pk, "scope_lines": "messaging:admin"})
    assert response.status_code == 200
    assert "This user may not hold messaging:admin: grant it on the user&#x27;s page first." in (
        response.content.decode()
    )
    response = admin_client.post(ADD_URL, {"user": member.pk, "scope_lines": "cache:sometimes"})
    assert "Unknown cache role" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_admin_refuses_a_token_for_a_user_granted_nothing(admin_client):
    member = User.objects.create_user(username="member@example.org")
    response = admin_client.post(ADD_URL, {"user": member.pk, "scope_lines": ""})
    assert response.status_code == 200
    assert "This user holds no grants: grant them on the user&#x27;s page first." in response.content.decode()
    assert not ApiToken.objects.exists()


def user_change_form(user: User, **changes) -> dict:
    """What the admin's user change page posts for `user`, with `changes`."""
    data = {
        "username": user.username,
        "email": user.email,
        "first_name": "",
        "last_name": "",
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "grants": "",
    }
    data.update(changes)
    return data


def test_an_admin_grants_scopes_on_the_users_page(admin_client):
    member = User.objects.create_user(username="member@example.org", email="member@example.org")
    url = f"/admin/accounts/user/{member.pk}/change/"
    lines = "messaging:read\ncache:readonly:news:key_prefix=user-"
    response = admin_client.post(url, user_change_form(member, grants=lines))
    assert response.status_code == 302, response.content.decode()
    member.refresh_from_db()
    assert member.grants == [
        {"face": "messaging", "role": "read"},
        {"face": "cache", "role": "readonly", "cache": "news", "key_prefix": "user-"},
    ]
    assert "messaging:read\ncache:readonly:news:key_prefix=user-" in admin_client.get(url).content.decode()

    refused = admin_client.post(url, user_change_form(member, grants="cache:everything"))
    assert refused.status_code == 200
    assert "Unknown cache role" in refused.content.decode()
    member.refresh_from_db()
    assert len(member.grants) == 2


def test_the_admin_lists_and_revokes_tokens(admin_client, make_token):
    token, _ = make_token("messaging:read", name="to-revoke")
    listing = admin_client.get(LIST_URL).content.decode()
    assert "to-revoke" in listing and token.prefix in listing
    response = admin_client.post(LIST_URL, {"action": "revoke", "_selected_action": [token.pk]}, follow=True)
    assert "Revoked 1 token(s)" in response.content.decode()
    token.refresh_from_db()
    assert token.status == "revoked"


def test_outsiders_cannot_reach_the_token_admin(client, make_token):
    assert client.get(LIST_URL).status_code == 302
    plain = User.objects.create_user(username="plain@example.org", password="pw")
    client.force_login(plain)
    assert client.get(LIST_URL).status_code == 302
