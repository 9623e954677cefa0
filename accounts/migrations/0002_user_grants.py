"""Users get explicit grants: the scopes their tokens may hold.

Until now a plain user could hold everything but `messaging:admin`, and a superuser
everything. So that deployed clients keep working after the upgrade, each existing
plain user is granted what their usable tokens (not revoked, not expired) allowed
under that rule: the union of those tokens' scopes, with `messaging:admin` (which a
plain user could not use, unless they had been demoted from superuser) read as
`messaging:write`. A plain user with no usable token is granted nothing. Superusers
keep holding every scope, implicitly, for as long as they are superusers; nothing
is written for them, so demoting one later takes that away.
"""

from django.db import migrations, models
from django.db.models import Q
from django.utils import timezone

import accounts.models


def _as_plain_user_could(scope: dict) -> dict:
    if scope.get("face") == "messaging" and scope.get("role") == "admin":
        return {"face": "messaging", "role": "write"}
    return scope


def grant_what_tokens_allowed(apps, schema_editor) -> None:
    User = apps.get_model("accounts", "User")
    ApiToken = apps.get_model("accounts", "ApiToken")
    usable = ApiToken.objects.filter(revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )
    for user in User.objects.filter(is_superuser=False).iterator():
        grants = []
        for scopes in usable.filter(user=user).order_by("pk").values_list("scopes", flat=True):
            for scope in map(_as_plain_user_could, scopes or []):
                if scope not in grants:
                    grants.append(scope)
        if grants:
            User.objects.filter(pk=user.pk).update(grants=grants)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="grants",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="The scopes this user's tokens may hold. A superuser holds every scope.",
                validators=[accounts.models.validate_scopes],
            ),
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="scopes",
            field=models.JSONField(
                default=list, help_text="The grants this token holds, bounded at each use by its user's grants."
            ),
        ),
        migrations.RunPython(grant_what_tokens_allowed, migrations.RunPython.noop),
    ]
