"""Users' grants and tokens: making, minting, revoking and checking them.

A user may hold only what they are granted (a superuser: everything); a token
never holds more than its user's grants when made, and is bounded by them again
at every use (`ApiToken.scope_set`). A token sees and revokes only itself and the
tokens minted from it.
"""

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import AuthenticationError, ScopeDenied

from .models import ApiToken, User, token_digest
from .scopes import Grant, ScopeSet

# Tokens are 40 hex characters (160 random bits), the shape the reference used.
TOKEN_BYTES = 20
MAX_TOKEN_LENGTH = 200
# What `POST user/token` grants a user when the request names no scopes: the
# reference API's tokens were for its messaging API, without its admin operations.
USER_TOKEN_DEFAULT_SCOPES = ScopeSet.parse(["messaging:write"])


def _describe(grants: list[Grant]) -> str:
    return ", ".join(str(grant) for grant in grants)


def user_for_email(email: str) -> tuple[User, bool]:
    """The user with this email (or this username), created without grants if there is none;
    and whether it was created now."""
    user = User.objects.filter(Q(email__iexact=email) | Q(username=email)).order_by("pk").first()
    if user is not None:
        return user, False
    return User.objects.create_user(username=email, email=email), True


def user_grant(*, user: User, scopes: ScopeSet) -> None:
    """Let `user` hold `scopes` from now on, besides what they hold already."""
    added = ScopeSet.parse(user.grants).uncovered(scopes)
    if added:
        user.grants = [*user.grants, *ScopeSet(added).as_json()]
        user.save(update_fields=["grants"])


def token_create(
    *,
    user: User,
    scopes: ScopeSet | None = None,
    name: str = "",
    expires_at: datetime | None = None,
    parent: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `user` and return it with its secret, shown this once.

    Without `scopes` the token holds everything the user is granted now.
    """
    if not user.is_active:
        raise ScopeDenied(f"User {user.get_username()!r} is inactive.")
    allowed = user.grant_set
    if scopes is None:
        scopes = allowed
    if not scopes:
        raise ScopeDenied(f"User {user.get_username()!r} holds no grants: an admin grants them first.")
    uncovered = allowed.uncovered(scopes)
    if uncovered:
        raise ScopeDenied(f"User {user.get_username()!r} may not hold {_describe(uncovered)}.")
    raw = secrets.token_hex(TOKEN_BYTES)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=raw[: ApiToken.PREFIX_LENGTH],
        digest=token_digest(raw),
        scopes=scopes.as_json(),
        expires_at=expires_at,
        parent=parent,
    )
    return token, raw


def token_mint(
    *, parent: ApiToken, scopes: ScopeSet, lifetime: int | None = None, name: str = ""
) -> tuple[ApiToken, str]:
    """Mint a short-lived token whose scopes are a subset of `parent`'s.

    It expires after `lifetime` seconds (capped by TOKEN_MINT_MAX_LIFETIME) and
    never after its parent; revoking the parent revokes it.
    """
    if not parent.scope_set.allows("tokens", "mint"):
        raise ScopeDenied("This token may not mint tokens: it needs the tokens:mint scope.")
    uncovered = parent.scope_set.uncovered(scopes)
    if uncovered:
        raise ScopeDenied(
            f"This token cannot mint {_describe(uncovered)}: a minted token's scopes must be "
            f"covered by the minting token's own ({parent.scope_set})."
        )
    lifetime = min(lifetime or settings.TOKEN_MINT_DEFAULT_LIFETIME, settings.TOKEN_MINT_MAX_LIFETIME)
    expires_at = timezone.now() + timedelta(seconds=lifetime)
    if parent.expires_at is not None:
        expires_at = min(expires_at, parent.expires_at)
    return token_create(user=parent.user, scopes=scopes, name=name, expires_at=expires_at, parent=parent)


def token_family_ids(token: ApiToken) -> list[int]:
    """The ids of `token` and of every token minted from it, however deep."""
    family, level = [token.pk], [token.pk]
    while level:
        level = list(ApiToken.objects.filter(parent_id__in=level).exclude(pk__in=family).values_list("pk", flat=True))
        family += level
    return family


def token_family(token: ApiToken):
    """What `token` may see and revoke: itself and the tokens minted from it."""
    return ApiToken.objects.filter(pk__in=token_family_ids(token))


@transaction.atomic
def token_revoke(*, token: ApiToken) -> None:
    """Revoke `token` and every token minted from it, however deep."""
    now = timezone.now()
    ApiToken.objects.filter(pk__in=token_family_ids(token), revoked_at__isnull=True).update(revoked_at=now)
    token.revoked_at = token.revoked_at or now


@transaction.atomic
def user_token_create(*, email: str, issuer: ApiToken, scopes: ScopeSet | None = None) -> tuple[ApiToken, str]:
    """Grant `scopes` (USER_TOKEN_DEFAULT_SCOPES when None) to the user with this email,
    creating the user if needed, and make them a token holding just those.

    The issuer grants only what it may do now, and acts only for users who may do
    no more than it: never for a superuser, unless it may do everything itself.
    """
    scopes = USER_TOKEN_DEFAULT_SCOPES if scopes is None else scopes
    held = issuer.scope_set
    uncovered = held.uncovered(scopes)
    if uncovered:
        raise ScopeDenied(f"This token cannot grant {_describe(uncovered)}, which it does not hold itself.")
    user, _ = user_for_email(email)
    beyond = held.uncovered(user.grant_set)
    if beyond:
        raise ScopeDenied(
            f"This token cannot make tokens for {email!r}, who may do more than it ({_describe(beyond)})."
        )
    user_grant(user=user, scopes=scopes)
    return token_create(user=user, scopes=scopes, name=f"user/token by {issuer.prefix}")


def token_load(raw: str) -> ApiToken | None:
    """The token whose secret is `raw`, with its user, or None."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    return ApiToken.objects.select_related("user").filter(digest=token_digest(raw)).first()


def token_check(token: ApiToken | None) -> ApiToken:
    """`token` if it may be used now; else AuthenticationError saying why not."""
    if token is None:
        raise AuthenticationError("Invalid token.")
    if token.is_revoked:
        raise AuthenticationError("Token has been revoked.")
    if token.is_expired:
        raise AuthenticationError("Token has expired.")
    if not token.user.is_active:
        raise AuthenticationError("The token's user is inactive.")
    return token


def token_touch(token: ApiToken) -> None:
    """Record that `token` was used, at most once per TOKEN_LAST_USED_INTERVAL."""
    now = timezone.now()
    interval = timedelta(seconds=settings.TOKEN_LAST_USED_INTERVAL)
    if token.last_used_at is None or now - token.last_used_at >= interval:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def token_authenticate(raw: str) -> ApiToken:
    """The usable token whose secret is `raw`; AuthenticationError otherwise."""
    token = token_check(token_load(raw))
    token_touch(token)
    return token
