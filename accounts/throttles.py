"""How often a user may make tokens over the API (minting, and `user/token`):
TOKEN_MINT_RATE_LIMIT a second, shared by every token of theirs, so minting more
tokens buys no more of anything.

Counted in Redis with the same Lua counter the cache and topics paths use
(core/ratelimit.py), under a key of the user's own that no other limit shares.
"""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from core.ratelimit import LUA_FUNCTIONS, counter_keys
from core.redis import get_redis
from core.schema import DETAIL

# KEYS: the user's mint counter for this second. ARGV: the limit. Answers 1 when past it.
MINT_COUNT_SCRIPT = LUA_FUNCTIONS + "\nif over_requests(KEYS[1], ARGV[1]) then return 1 end\nreturn 0\n"


MINT_LIMITED = OpenApiResponse(
    response=DETAIL, description="The user has made TOKEN_MINT_RATE_LIMIT tokens this second; see Retry-After."
)


class MintRateThrottle(BaseThrottle):
    """Counts each mint request of an authenticated user; refuses past the limit for
    the rest of the second."""

    def allow_request(self, request, view) -> bool:
        if request.user is None:
            return True
        requests_key, _ = counter_keys(f"mint:{request.user.pk}")
        count = get_redis().register_script(MINT_COUNT_SCRIPT)
        return not count(keys=[requests_key], args=[settings.TOKEN_MINT_RATE_LIMIT])

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
