"""Per-token request and byte-rate limits, counted in Redis in one-second windows.

The counting is Lua (`LUA_FUNCTIONS`) that a face's own script calls before its
operation, so limiting and the operation cost one Redis round trip together.
"""

import time

from django.conf import settings

from .asgi import HTTPError

# over_requests(key, limit) / over_bytes(key, limit, size): count and say whether the
# token is past its limit this second (a refused byte count is given back).
LUA_FUNCTIONS = """
local function over_requests(key, limit)
  limit = tonumber(limit)
  if limit <= 0 then return false end
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, 2) end
  return count > limit
end
local function over_bytes(key, limit, size)
  limit = tonumber(limit)
  if limit <= 0 or size <= 0 then return false end
  local moved = redis.call('INCRBY', key, size)
  if moved == size then redis.call('EXPIRE', key, 2) end
  if moved > limit then
    redis.call('DECRBY', key, size)
    return true
  end
  return false
end
"""


def counter_keys(token_id: int) -> tuple[str, str]:
    """The request and byte counters of a token for the current second."""
    second = int(time.time())
    return f"ratelimit:requests:{token_id}:{second}", f"ratelimit:bytes:{token_id}:{second}"


def limits() -> tuple[int, int]:
    return settings.CACHE_RATE_LIMIT_REQUESTS, settings.CACHE_RATE_LIMIT_BYTES


def rate_limited(kind: str) -> HTTPError:
    """The 429 for a script's 'requests' or 'bytes' answer."""
    if kind == "requests":
        message = (
            f"Too many requests: a token may make {settings.CACHE_RATE_LIMIT_REQUESTS} requests per second "
            "(CACHE_RATE_LIMIT_REQUESTS)."
        )
    else:
        message = (
            f"Too much data: a token may move {settings.CACHE_RATE_LIMIT_BYTES} bytes per second "
            "(CACHE_RATE_LIMIT_BYTES)."
        )
    return HTTPError(429, message, [("retry-after", "1")])
