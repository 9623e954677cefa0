"""How often a user may make tokens over the API (minting, and `user/token`):
TOKEN_MINT_RATE_LIMIT a second, shared by every token of theirs, so minting more
tokens buys no more of anything.

Counted in Redis by the service's named limits (`core.ratelimit.over_limit`), under
a name no other limit shares.
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from core.ratelimit import over_limit
from core.schema import DETAIL

MINT_LIMITED = OpenApiResponse(
    response=DETAIL, description="The user has made TOKEN_MINT_RATE_LIMIT tokens this second; see Retry-After."
)


class MintRateThrottle(BaseThrottle):
    """Counts each mint request of an authenticated user; refuses past the limit for
    the rest of the second."""

    def allow_request(self, request, view) -> bool:
        if request.user is None:
            return True
        return not over_limit("mint", request.user.pk, limit=settings.TOKEN_MINT_RATE_LIMIT)

    def wait(self) -> float:
        return 1


class MintLimited:
    """A view whose POST makes a token, and so counts against the user's mint limit."""

    def get_throttles(self):
        return [MintRateThrottle()] if self.request.method == "POST" else []

    def throttled(self, request, wait):
        raise exceptions.Throttled(
            wait,
            detail=f"Too many tokens minted: a user may mint {settings.TOKEN_MINT_RATE_LIMIT} tokens per second "
            "(TOKEN_MINT_RATE_LIMIT).",
        )
