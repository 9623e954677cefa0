"""How often a user may mint tokens: TOKEN_MINT_RATE_LIMIT a second, shared by every
token of theirs, so minting more tokens buys no more of anything.

Counted in Redis with the same Lua counter the cache and topics paths use
(core/ratelimit.py), under a key of the user's own that no other limit shares.
"""

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from core.ratelimit import LUA_FUNCTIONS, counter_keys
from core.redis import get_redis

# KEYS: the user's mint counter for this second. ARGV: the limit. Answers 1 when past it.
MINT_COUNT_SCRIPT = LUA_FUNCTIONS + "\nif over_requests(KEYS[1], ARGV[1]) then return 1 end\nreturn 0\n"


def mint_limit_message() -> str:
    return (
        f"Too many tokens minted: a user may mint {settings.TOKEN_MINT_RATE_LIMIT} tokens per second "
        "(TOKEN_MINT_RATE_LIMIT)."
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
