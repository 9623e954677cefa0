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
    out, err = createtoken("ops@example.org")
    raw = out.strip().splitlines()[-1]
    token = token_authenticate(raw)
    assert token.user.email == "ops@example.org"
    assert (
        str(token.scope_set)
        == "messaging:write, cache:readwrite:*, topics:publishsubscribe:*, jobs:readwrite, tokens:mint"
    )
    assert "Created user ops@example.org" in err


def test_createtoken_reuses_the_user_with_that_email():
    createtoken("ops@example.org")
    createtoken("OPS@example.org")
    assert User.objects.count() == 1
    assert ApiToken.objects.count() == 2


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
        (["--scope", "messaging:admin"], "may not hold messaging:admin"),
        (["--expires-in", "0"], "--expires-in must be a positive number of seconds"),
    ],
)
def test_createtoken_refuses_bad_requests_saying_why(args, message):
    with pytest.raises(CommandError, match=message):
        createtoken("ops@example.org", *args)
    assert not ApiToken.objects.exists()


def test_setuplocal_creates_the_admin_once_and_prints_its_token():
    out = StringIO()
    call_command("setuplocal", stdout=out)
    lines = out.getvalue()
    raw = lines.split("API token")[1].split()[0]
    token = token_authenticate(raw)
    assert token.user.username == "admin" and token.user.is_superuser
    assert token.scope_set.allows("messaging", "admin")
    password = lines.split("password")[1].split()[0]
    assert token.user.check_password(password)

    again = StringIO()
    call_command("setuplocal", stdout=again)
    assert "exists" in again.getvalue()
    assert ApiToken.objects.count() == 1
