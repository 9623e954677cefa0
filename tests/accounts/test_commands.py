from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.services import token_authenticate

pytestmark = pytest.mark.django_db


def createtoken(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("createtoken", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_createtoken_prints_the_token_alone_on_the_last_line():
    out, err = createtoken("ops@example.org", "--scope", "messaging:write", "--scope", "jobs:readonly")
    raw = out.strip().splitlines()[-1]
    token = token_authenticate(raw)
    assert token.user.email == "ops@example.org"
    assert str(token.scope_set) == "messaging:write, jobs:readonly"
    assert "Created user ops@example.org" in err


def test_createtoken_grants_what_it_names():
    createtoken("ops@example.org", "--scope", "cache:readonly:news")
    createtoken("ops@example.org", "--scope", "messaging:admin", "--scope", "cache:readonly:news:key=a")
    user = User.objects.get(email="ops@example.org")
    assert not user.is_superuser
    assert user.grants == [
        {"face": "cache", "role": "readonly", "cache": "news"},
        {"face": "messaging", "role": "admin"},
    ]


def test_createtoken_without_scopes_gives_what_the_user_is_granted():
    createtoken("ops@example.org", "--scope", "jobs:readonly")
    out, _ = createtoken("OPS@example.org")
    assert User.objects.count() == 1
    assert ApiToken.objects.count() == 2
    assert str(token_authenticate(out.strip().splitlines()[-1]).scope_set) == "jobs:readonly"


def test_createtoken_refuses_a_new_user_without_scopes_and_leaves_nothing():
    with pytest.raises(CommandError, match=r"holds no grants.*--scope, or use --superuser"):
        createtoken("ops@example.org")
    assert not User.objects.exists()


def test_createtoken_superuser_gets_messaging_admin():
    out, _ = createtoken("root@example.org", "--superuser")
    token = token_authenticate(out.strip().splitlines()[-1])
    assert token.user.is_superuser and token.user.is_staff
    assert token.scope_set.allows("messaging", "admin")


def test_createtoken_with_scopes_and_expiry():
    out, _ = createtoken(
        "ops@example.org", "--scope", "cache:readonly:news", "--scope", "jobs:readonly", "--expires-in", "600"
    )
    token = token_authenticate(out.strip().splitlines()[-1])
    assert str(token.scope_set) == "cache:readonly:news, jobs:readonly"
    assert timezone.now() + timedelta(seconds=590) < token.expires_at <= timezone.now() + timedelta(seconds=600)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "cache:everything"], "Unknown cache role 'everything'"),
        (["--expires-in", "0"], "--expires-in must be a positive number of seconds"),
    ],
)
def test_createtoken_refuses_bad_requests_saying_why(args, message):
    with pytest.raises(CommandError, match=message):
        createtoken("ops@example.org", *args)
    assert not ApiToken.objects.exists()


def test_setuplocal_creates_the_admin_once_and_prints_its_token():
    out = StringIO()
    call_command("setuplocal", "--skip-migrate", stdout=out)
    lines = out.getvalue()
    raw = lines.split("API token")[1].split()[0]
    token = token_authenticate(raw)
    assert token.user.username == "admin" and token.user.is_superuser
    assert token.scope_set.allows("messaging", "admin")
    password = lines.split("password")[1].split()[0]
    assert token.user.check_password(password)

    again = StringIO()
    call_command("setuplocal", "--skip-migrate", stdout=again)
    assert "exists" in again.getvalue()
    assert ApiToken.objects.count() == 1
