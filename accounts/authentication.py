"""The one authentication routine every face shares.

A token may come as `Authorization: Token <t>`, `Authorization: Bearer <t>`,
`Authorization: <t>`, `?token=<t>` or `?apikey=<t>`: `read_token` is the one
reader of those forms (`request_token` for a Django or DRF request). DRF views use
`TokenAuthentication`; the lean cache and topics paths use `lean_authenticate`,
which trusts a token check for TOKEN_CACHE_SECONDS.
"""

from collections.abc import Mapping

from asgiref.sync import sync_to_async
from django.conf import settings
from rest_framework import authentication, exceptions

from core.asgi import HTTPError, Request
from core.db import close_stale_connections
from core.errors import AuthenticationError
from core.lookups import TrustedLookups

from .models import ApiToken, token_digest
from .services import token_authenticate, token_check, token_load, token_touch

SCHEMES = ("token", "bearer")
QUERY_PARAMETERS = ("token", "apikey")
BAD_HEADER = "The Authorization header must be 'Token <token>', 'Bearer <token>' or the token alone."


def read_token(*, authorization: str | None, query: Mapping[str, str]) -> str | None:
    """The raw token a request carries, or None when it carries none."""
    if authorization:
        parts = authorization.split()
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2 and parts[0].lower() in SCHEMES:
            return parts[1]
        raise AuthenticationError(BAD_HEADER)
    for name in QUERY_PARAMETERS:
        if query.get(name):
            return query[name]
    return None


def request_token(request) -> str | None:
    """The raw token a Django or DRF request carries (header, `?token=` or `?apikey=`), or None."""
    return read_token(authorization=request.META.get("HTTP_AUTHORIZATION"), query=request.GET)


class TokenAuthentication(authentication.BaseAuthentication):
    """DRF authentication: `request.user` is the token's user, `request.auth` the token."""

    def raw_token(self, request) -> str | None:
        """Where this authentication finds the token; a face with more forms extends it."""
        return request_token(request)

    def authenticate(self, request) -> tuple | None:
        try:
            raw = self.raw_token(request)
            if raw is None:
                return None
            token = token_authenticate(raw)
        except AuthenticationError as error:
            raise exceptions.AuthenticationFailed(str(error)) from None
        return token.user, token

    def authenticate_header(self, request) -> str:
        return "Token"


def _load_and_touch(raw: str) -> ApiToken | None:
    close_stale_connections()
    token = token_load(raw)
    if token is not None and not (token.is_revoked or token.is_expired):
        token_touch(token)
    return token


_recent = TrustedLookups(sync_to_async(_load_and_touch), trust=lambda token: settings.TOKEN_CACHE_SECONDS)


async def atoken_authenticate(raw: str) -> ApiToken:
    """`token_authenticate` for async views, trusting a check for TOKEN_CACHE_SECONDS.

    Expiry is checked on every call; a revocation is seen once the trusted
    check is older than TOKEN_CACHE_SECONDS.
    """
    return token_check(await _recent.get(token_digest(raw), raw))


def trusted_token(raw: str, digest: str | None = None):
    """The token a trusted check of `raw` found, without checking again; MISSING when none is trusted now.
    `digest`: `raw`'s digest, when the caller keeps it (a stream that checks on every wake)."""
    return _recent.peek(digest or token_digest(raw))


def forget_recent_tokens() -> None:
    """Drop every trusted token check (for tests and after bulk revocation)."""
    _recent.forget()


async def lean_authenticate(request: Request) -> ApiToken:
    """The lean request's token (header or `?token=`, not both); HTTPError 400/401 otherwise."""
    header = request.headers.get("authorization")
    if header and request.query.get("token"):
        raise HTTPError(
            400, "Pass the token either as the token query parameter or as the Authorization header, not both."
        )
    try:
        raw = read_token(authorization=header, query=request.query)
        if raw is None:
            raise AuthenticationError(
                "Missing token: pass it as the token query parameter or as the Authorization header."
            )
        token = await atoken_authenticate(raw)
    except AuthenticationError as error:
        raise HTTPError(401, str(error)) from None
    request.raw_token = raw
    return token
