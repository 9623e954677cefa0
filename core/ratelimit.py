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

The cache data API leases ahead (`Allowance`): a process takes a block of a user's requests
(and bytes) for the current second from the same counters at once, then counts the user's
next requests against that block in memory, so that a busy user's request costs Redis its
item command alone.
"""

import asyncio
import time

from django.conf import settings

from .asgi import HTTPError
from .redis import REDIS_ERRORS, get_async_data_redis, get_redis
from .scripts import RedisScript

# over_requests(key, limit) / over_bytes(key, limit, size): count and say whether the
# user is past its limit this second (a refused byte count is given back).
# lease(key, limit, want, need): count up to `want` against a limit above 0 and answer how many were
# granted: `want`, but no more than a quarter of what the limit leaves (at least `need`), so that the
# blocks shrink as a busy user nears its limit; 0, with nothing counted, when less than `need` is left.
LUA_FUNCTIONS = """
local function over_requests(key, limit)
  limit = tonumber(limit)
  if limit <= 0 then return false end
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, 2) end
  return count > limit
end
local function lease(key, limit, want, need)
  limit, want, need = tonumber(limit), tonumber(want), tonumber(need)
  local left = limit - tonumber(redis.call('GET', key) or '0')
  if left < need then return 0 end
  local granted = math.min(want, math.max(need, math.floor(left / 4)))
  if redis.call('INCRBY', key, granted) == granted then redis.call('EXPIRE', key, 2) end
  return granted
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


# KEYS: a counter. ARGV: its limit (above 0), how much is wanted, how much at least. How much was granted.
LEASE_SCRIPT = RedisScript(LUA_FUNCTIONS + "return lease(KEYS[1], ARGV[1], ARGV[2], ARGV[3])")

# No block leased at once is more than this share of a limit (nor, by `lease`, a quarter of what is left of it):
# what other processes hold unspent when a user's lease is refused stays small.
LEASE_SHARE = 32
# The first block of bytes a share leases in a second (or the size needed, when larger).
FIRST_BYTE_BLOCK = 4096


class Leasing:
    """A lease under way on a share, as a `with` block around it: the share names it (`share.<slot>`) meanwhile.
    The requests that find the share spent meanwhile wait for it (`wait`), then take from the block it brought;
    when Redis could not be asked, they fail with it together rather than each asking Redis again in turn."""

    __slots__ = ("_done", "_share", "_slot")

    def __init__(self, share: "Share", slot: str) -> None:
        self._done: asyncio.Future = asyncio.get_running_loop().create_future()
        self._share, self._slot = share, slot

    def __enter__(self) -> "Leasing":
        setattr(self._share, self._slot, self)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        setattr(self._share, self._slot, None)
        if not self._done.done():
            self._done.set_result(error if isinstance(error, REDIS_ERRORS) else None)

    async def wait(self) -> None:
        failure = await asyncio.shield(self._done)  # a waiter cancelled leaves the lease to the others
        if failure is not None:
            raise failure.with_traceback(None)


class Share:
    """What a process may still spend of one user's requests and bytes this second, how large its next
    blocks are (each twice the last, from 1 request and from FIRST_BYTE_BLOCK bytes), the lease of each kind
    under way (one at a time: a burst of concurrent requests leasing a block each would lease many times what
    it needs), and whether Redis refused a lease this second (requests: every later request is refused too, as
    the count cannot fall within the second; bytes: the rest of the second is counted in Redis, request by
    request, as before leasing, so that a value is not read out of Redis only to be refused)."""

    __slots__ = (
        "byte_block",
        "byte_leasing",
        "bytes",
        "bytes_refused",
        "request_block",
        "request_leasing",
        "requests",
        "requests_refused",
    )

    def __init__(self) -> None:
        self.requests = self.bytes = 0
        self.request_block = 1
        self.byte_block = FIRST_BYTE_BLOCK
        self.request_leasing: Leasing | None = None
        self.byte_leasing: Leasing | None = None
        self.requests_refused = self.bytes_refused = False

    def take_request(self) -> bool:
        """Spend one request of the block, when one is left."""
        if self.requests > 0:
            self.requests -= 1
            return True
        return False

    def request_lease(self, limit: int) -> int:
        """How many requests to ask for, this one included, when the block is spent."""
        want = min(self.request_block, max(1, limit // LEASE_SHARE))
        self.request_block = want * 2
        return want

    def take_bytes(self, size: int) -> bool:
        """Spend `size` bytes of the block, when that many are left."""
        if self.bytes >= size:
            self.bytes -= size
            return True
        return False

    def byte_lease(self, size: int, limit: int) -> int:
        """How many bytes to ask for when `size` are needed and the block holds fewer."""
        want = max(size, min(self.byte_block, limit // LEASE_SHARE))
        self.byte_block = want * 2
        return want


class Allowance:
    """A process's shares of users' rate limits for the current second, leased ahead from the counters in
    Redis (`counter_keys`) that every process counts in: a process never spends more than Redis granted it,
    so the limits hold across processes, while most of a busy user's requests are counted in memory.
    Used from the event loop's thread only."""

    def __init__(self) -> None:
        self.second = 0
        self.shares: dict[int, Share] = {}

    def share(self, user_id: int) -> Share:
        """The user's share of this second (a new second starts every share again, empty)."""
        second = int(time.time())
        if second != self.second:
            self.second, self.shares = second, {}
        share = self.shares.get(user_id)
        if share is None:
            share = self.shares[user_id] = Share()
        return share

    async def spend_bytes(self, user_id: int, size: int, limit: int) -> None:
        """Spend `size` bytes of the user's share, leasing a block first when it holds fewer (or waiting for
        the lease under way); the 429 when the user's budget has fewer left."""
        share = self.share(user_id)
        while not share.take_bytes(size):
            if share.byte_leasing is None:
                await self._lease_bytes(share, user_id, size, limit)
                return
            await share.byte_leasing.wait()
            share = self.share(user_id)

    async def _lease_bytes(self, share: Share, user_id: int, size: int, limit: int) -> None:
        with Leasing(share, "byte_leasing"):
            _, byte_key = counter_keys(user_id)
            want = share.byte_lease(size, limit)
            granted = await LEASE_SCRIPT.run(get_async_data_redis(), [byte_key], [limit, want, size])
            if not granted:
                share.bytes_refused = True
                raise rate_limited("bytes")
            share.bytes += granted - size
