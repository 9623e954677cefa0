import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import AuthenticationError, ScopeDenied

from .models import ApiToken, User, token_digest
from .scopes import Grant, ScopeSet, all_scopes

# Tokens are 40 hex characters (160 random bits), the shape the reference used.
TOKEN_BYTES = 20
MAX_TOKEN_LENGTH = 200


def user_scopes(user: User) -> ScopeSet:
    """Everything `user` may do: superusers also hold messaging admin."""
    return all_scopes(admin=user.is_superuser)


def _describe(grants: list[Grant]) -> str:
    return ", ".join(str(grant) for grant in grants)


def token_create(
    *,
    user: User,
    scopes: ScopeSet | None = None,
    name: str = "",
    expires_at: datetime | None = None,
    parent: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `user` and return it with its secret, shown this once.

    Without `scopes` the token holds everything the user may do.
    """
    allowed = user_scopes(user)
    if scopes is None:
        scopes = allowed
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


@transaction.atomic
def token_revoke(*, token: ApiToken) -> None:
    """Revoke `token` and every token minted from it, however deep."""
    now = timezone.now()
    ids = [token.pk]
    while ids:
        ApiToken.objects.filter(pk__in=ids, revoked_at__isnull=True).update(revoked_at=now)
        ids = list(ApiToken.objects.filter(parent_id__in=ids).values_list("pk", flat=True))
    token.revoked_at = token.revoked_at or now


def user_token_create(*, email: str, issuer: ApiToken, scopes: ScopeSet | None = None) -> tuple[ApiToken, str]:
    """A new token for the user with this email, creating the user if needed.

    Without `scopes` the token holds what the user may do and the issuer holds.
    """
    user = User.objects.filter(email__iexact=email).order_by("pk").first()
    if user is None:
        user = User.objects.create_user(username=email, email=email)
    if scopes is None:
        scopes = ScopeSet(grant for grant in user_scopes(user) if issuer.scope_set.covers(ScopeSet([grant])))
    uncovered = issuer.scope_set.uncovered(scopes)
    if uncovered:
        raise ScopeDenied(f"This token cannot grant {_describe(uncovered)}, which it does not hold itself.")
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
