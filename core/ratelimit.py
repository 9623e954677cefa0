"""Rate limits counted in Redis in fixed windows, per user.

A limit holds for a user, not a token: every token of a user (the ones it minted too)
counts against the same budget, so more tokens do not buy more requests.

Two ways to count:
- The cache and topics faces count requests and bytes per second (CACHE_RATE_LIMIT_*)
  on the data Redis (`get_async_data_redis`). On one Redis they count inside their own
  Lua script, so that limiting and the operation cost one Redis round trip together: the
  script includes `LUA_FUNCTIONS` and passes `counter_keys(user_id)`. On a Redis Cluster
  the user's counters and the item or topic are in different slots, so `acharge` counts
  first, in a call of its own on the user's slot (its counters share a hash tag).
  `arequest_allowed(user_id)` counts one request that no script of its own does (a
  subscribe). Both raise the 429.
- Anything else counts a request with `over_limit` on REDIS_URL: one INCR in a window of
  `seconds`, e.g. `over_limit("mint", user.pk, limit=10)` (accounts/throttles.py).
"""

import time

from django.conf import settings

from .asgi import HTTPError
from .redis import get_async_data_redis, get_redis
from .scripts import RedisScript

# over_requests(key, limit) / over_bytes(key, limit, size): count and say whether the
# user is past its limit this second (a refused byte count is given back).
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

# KEYS: the window's counter. ARGV: limit, seconds the window lasts. 1 when past the limit.
WINDOW_SCRIPT = RedisScript(
    """
local limit = tonumber(ARGV[1])
if limit <= 0 then return 0 end
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]) + 1) end
if count > limit then return 1 end
return 0
"""
)


def counter_keys(user_id: int) -> tuple[str, str]:
    """The request and byte counters of a user (all of its tokens) for the current second, in one
    Redis Cluster slot (the hash tag `{<user id>}`)."""
    second = int(time.time())
    return f"ratelimit:{{{user_id}}}:requests:{second}", f"ratelimit:{{{user_id}}}:bytes:{second}"


def limits() -> tuple[int, int]:
    return settings.CACHE_RATE_LIMIT_REQUESTS, settings.CACHE_RATE_LIMIT_BYTES


def rate_limited(kind: str) -> HTTPError:
    """The 429 for a script's 'requests' or 'bytes' answer."""
    if kind == "requests":
        message = (
            f"Too many requests: a user's tokens may make {settings.CACHE_RATE_LIMIT_REQUESTS} requests per second "
            "together (CACHE_RATE_LIMIT_REQUESTS)."
        )
    else:
        message = (
            f"Too much data: a user's tokens may move {settings.CACHE_RATE_LIMIT_BYTES} bytes per second "
            "together (CACHE_RATE_LIMIT_BYTES)."
        )
    return HTTPError(429, message, [("retry-after", "1")])


def _window(name: str, subject: object, seconds: int) -> tuple[list[str], int]:
    return [f"ratelimit:{name}:{subject}:{int(time.time()) // seconds}"], seconds


def over_limit(name: str, subject: object, *, limit: int, seconds: int = 1) -> bool:
    """Count one `name` for `subject` (a user id) and say whether it passes `limit` in this
    window of `seconds`. A limit of 0 or less is no limit."""
    keys, seconds = _window(name, subject, seconds)
    return bool(WINDOW_SCRIPT.run_sync(get_redis(), keys, [limit, seconds]))


# KEYS: request counter, byte counter. ARGV: request limit (0: no request counted), byte limit, size.
CHARGE_SCRIPT = RedisScript(
    LUA_FUNCTIONS
    + """
if over_requests(KEYS[1], ARGV[1]) then return 'requests' end
if over_bytes(KEYS[2], ARGV[2], tonumber(ARGV[3])) then return 'bytes' end
return 'ok'
"""
)


async def acharge(user_id: int, *, request: bool = True, size: int = 0) -> None:
    """Count a request (unless not `request`) and `size` bytes of the user's cache and topics
    budget, as `over_requests` and `over_bytes` do inside a face's script; the 429 when spent."""
    requests, moved = limits()
    answer = await CHARGE_SCRIPT.run(
        get_async_data_redis(), list(counter_keys(user_id)), [requests if request else 0, moved, size]
    )
    if answer != b"ok":
        raise rate_limited(answer.decode())


async def arequest_allowed(user_id: int) -> None:
    """Count one request of the user's cache and topics budget; the 429 when it is spent."""
    await acharge(user_id)
