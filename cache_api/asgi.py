"""The cache data API, `GET|PUT|DELETE /cache/{cacheName}`, as a lean ASGI app.

Per request: the token check and the cache lookup come from short in-process
caches, and the rate limits are counted against the user's share of this second
that the process leased ahead (`core.ratelimit.Allowance`): while it lasts, a
request costs Redis its item command alone; once it is spent, one Lua call counts
the request, leases the share's next block and runs the item command. On a Redis
Cluster (DATA_REDIS_CLUSTER_NODES) the user's rate-limit counters and the item are
in different slots: the limit is counted first, on the user's slot, then the
item's command runs on the item's.
"""

import base64
import binascii
import logging
import re

from accounts.authentication import lean_authenticate
from accounts.scopes import describe_missing
from core import metrics
from core.asgi import HTTPError, Request, Response, Send, ascii_whole_number, lean_app, preflight
from core.ratelimit import LUA_FUNCTIONS, Allowance, Leasing, Share, acharge, counter_keys, limits, rate_limited
from core.redis import data_is_cluster, get_async_data_redis
from core.scripts import RedisScript

from .keys import cache_name_error, item_key
from .selectors import CacheInfo, acache_info

logger = logging.getLogger(__name__)

PREFIX = "/cache/"
METHODS = "GET, PUT, DELETE, OPTIONS"
BASE64URL = re.compile(rb"[A-Za-z0-9_-]*={0,2}")

# KEYS: item, request counter, byte counter. ARGV: op, request limit, byte limit, value, ttl, requests wanted
# (0: the request is paid for already). Answers {'hit', granted, value} | {'miss', granted} | {'ok', granted} |
# {'bytes', granted} | {'requests'}: granted, the requests leased (this one and the next ones of the process's
# share), else 1.
ITEM_SCRIPT = RedisScript(
    LUA_FUNCTIONS
    + """
local op = ARGV[1]
local granted = 1
if tonumber(ARGV[2]) > 0 and tonumber(ARGV[6]) > 0 then
  granted = lease(KEYS[2], ARGV[2], ARGV[6], 1)
  if granted == 0 then return {'requests'} end
end
local value, size = false, 0
if op == 'get' then
  value = redis.call('GET', KEYS[1])
  if not value then return {'miss', granted} end
  size = string.len(value)
elseif op == 'set' then
  size = string.len(ARGV[4])
end
if over_bytes(KEYS[3], ARGV[3], size) then return {'bytes', granted} end
if op == 'get' then return {'hit', granted, value} end
if op == 'set' then
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
else
  redis.call('UNLINK', KEYS[1])
end
return {'ok', granted}
"""
)

# This process's shares of the users' limits (one event loop per process serves this app).
allowance = Allowance()


def parse_key(query: dict[bytes, bytes]) -> bytes:
    if b"key" in query and b"key_base64" in query:
        raise HTTPError(400, "Pass either key or key_base64, not both.")
    if b"key" in query:
        key = query[b"key"]
    elif b"key_base64" in query:
        encoded = query[b"key_base64"]
        stripped = encoded.rstrip(b"=")
        if not BASE64URL.fullmatch(encoded) or len(stripped) % 4 == 1:
            raise HTTPError(400, "key_base64 must be base64url (A-Z, a-z, 0-9, '-' and '_'; padding optional).")
        try:
            key = base64.b64decode(stripped + b"=" * (-len(stripped) % 4), altchars=b"-_", validate=True)
        except binascii.Error:
            raise HTTPError(
                400, "key_base64 must be base64url (A-Z, a-z, 0-9, '-' and '_'; padding optional)."
            ) from None
    else:
        raise HTTPError(400, "Missing key: pass the key or key_base64 query parameter.")
    if not key:
        raise HTTPError(400, "The key must not be empty.")
    return key


def parse_ttl(query: dict[bytes, bytes], cache: CacheInfo) -> int:
    raw = query.get(b"ttl_seconds")
    if raw is None:
        raise HTTPError(400, "Missing ttl_seconds: it is required to set a value.")
    text = raw.decode("utf-8", "replace")
    ttl = ascii_whole_number(text.strip(" \t"), signed=True)
    if ttl is None:
        raise HTTPError(400, f"ttl_seconds must be a whole number of seconds, not {text!r}.")
    if ttl <= 0:
        raise HTTPError(400, "ttl_seconds must be greater than 0.")
    if ttl > cache.max_ttl_seconds:
        raise HTTPError(400, f"ttl_seconds may be at most {cache.max_ttl_seconds} (the cache's TTL limit).")
    return ttl


async def run_item(*, op: str, user_id: int, key: bytes, value: bytes = b"", ttl: int = 0) -> tuple[str, bytes]:
    """The item operation, rate limited: ('hit', value), ('miss', b'') or ('ok', b''); the 429 past a limit.

    While the user's share of this second lasts (`core.ratelimit.Allowance`), the item's command alone;
    otherwise ITEM_SCRIPT counts the request, leases the share's next block and runs the command, in one call.
    """
    if data_is_cluster():
        return await run_item_on_cluster(op=op, user_id=user_id, key=key, value=value, ttl=ttl)
    requests, moved = limits()
    share = allowance.share(user_id)
    while requests > 0 and not share.take_request():
        if share.requests_refused:
            raise rate_limited("requests")
        if share.request_leasing is None:
            return await run_item_leasing(
                share, op=op, user_id=user_id, key=key, value=value, ttl=ttl, requests=requests, moved=moved
            )
        await share.request_leasing.wait()  # another request is leasing the share's next block: take from it
        share = allowance.share(user_id)
    if moved > 0 and share.bytes_refused:
        answer = await run_item_script(
            op=op, user_id=user_id, key=key, value=value, ttl=ttl, requests=requests, moved=moved, want=0
        )
        return item_outcome(answer)
    return await run_item_from_share(op=op, user_id=user_id, key=key, value=value, ttl=ttl, moved=moved)


async def run_item_leasing(
    share: Share, *, op: str, user_id: int, key: bytes, value: bytes, ttl: int, requests: int, moved: int
) -> tuple[str, bytes]:
    """`run_item` for a request the user's share cannot pay for: ITEM_SCRIPT counts it, leases the share's next
    block and runs the item command, while the user's other requests wait for the block."""
    with Leasing(share, "request_leasing"):
        want = share.request_lease(requests)
        answer = await run_item_script(
            op=op, user_id=user_id, key=key, value=value, ttl=ttl, requests=requests, moved=moved, want=want
        )
        if answer[0] == b"requests":
            share.requests_refused = True  # the count cannot fall back under the limit within this second
        else:
            share.requests += answer[1] - 1
        return item_outcome(answer)


async def run_item_script(
    *, op: str, user_id: int, key: bytes, value: bytes, ttl: int, requests: int, moved: int, want: int
) -> list:
    """ITEM_SCRIPT's answer for the item operation under the limits given (`limits()`), leasing `want` requests
    (0: the request is paid for)."""
    keys = [key, *counter_keys(user_id)]
    return await ITEM_SCRIPT.run(get_async_data_redis(), keys, [op, requests, moved, value, ttl, want])


def item_outcome(answer: list) -> tuple[str, bytes]:
    """`run_item`'s answer for ITEM_SCRIPT's; the 429 for a limit it refused."""
    outcome = answer[0].decode()
    if outcome in ("requests", "bytes"):
        raise rate_limited(outcome)
    return outcome, answer[2] if outcome == "hit" else b""


async def run_item_from_share(
    *, op: str, user_id: int, key: bytes, value: bytes, ttl: int, moved: int
) -> tuple[str, bytes]:
    """`run_item` for a request the user's share pays for: the item's command, and the bytes it moves spent
    from the share (`Allowance.spend_bytes`)."""
    client = get_async_data_redis()
    if op == "get":
        found = await client.get(key)
        if found is None:
            return "miss", b""
        if moved > 0:
            await allowance.spend_bytes(user_id, len(found), moved)
        return "hit", found
    if op == "set":
        if moved > 0:
            await allowance.spend_bytes(user_id, len(value), moved)
        await client.set(key, value, ex=ttl)
    else:
        await client.unlink(key)
    return "ok", b""


async def run_item_on_cluster(*, op: str, user_id: int, key: bytes, value: bytes, ttl: int) -> tuple[str, bytes]:
    """`run_item` on a Redis Cluster: the limit counted on the user's slot, then the item's command;
    a hit's bytes are counted once its size is known. HTTPError 429 past a limit."""
    client = get_async_data_redis()
    if op == "get":
        await acharge(user_id)
        found = await client.get(key)
        if found is None:
            return "miss", b""
        await acharge(user_id, request=False, size=len(found))
        return "hit", found
    await acharge(user_id, size=len(value))
    if op == "set":
        await client.set(key, value, ex=ttl)
    else:
        await client.unlink(key)
    return "ok", b""


async def respond(request: Request, send: Send) -> Response:
    segments = request.path_segments(PREFIX)
    if len(segments) != 1 or not segments[0]:
        raise HTTPError(404, "Not Found: the cache data API is /cache/{cacheName}.")
    name = segments[0]
    problem = cache_name_error(name)
    if problem:
        raise HTTPError(400, problem)
    if request.method == "OPTIONS":
        return preflight(request, METHODS)
    if request.method not in ("GET", "PUT", "DELETE"):
        raise HTTPError(405, f"Method {request.method} is not allowed here.", [("allow", METHODS)])

    token = await lean_authenticate(request)
    query = request.raw_query
    key = parse_key(query)
    action = "read" if request.method == "GET" else "write"
    if not token.scope_set.allows("cache", action, cache=name, key=key):
        raise HTTPError(403, describe_missing("cache", action, cache=name, key=key))
    cache = await acache_info(name)
    if cache is None:
        raise HTTPError(404, "Cache Not Found")

    redis_key = item_key(cache.id, key)
    if request.method == "GET":
        outcome, found = await run_item(op="get", user_id=token.user_id, key=redis_key)
    elif request.method == "PUT":
        ttl = parse_ttl(query, cache)
        limit = cache.max_item_bytes
        too_large = f"The item (key + value) is larger than the limit of {limit} bytes."
        if len(key) >= limit:
            raise HTTPError(400, too_large)
        value = await request.body(limit - len(key), too_large)
        outcome, found = await run_item(op="set", user_id=token.user_id, key=redis_key, value=value, ttl=ttl)
    else:
        outcome, found = await run_item(op="del", user_id=token.user_id, key=redis_key)

    if outcome == "hit":
        metrics.count("cache_hits")
        metrics.count("cache_bytes", len(found), "get")
        return Response(200, found, "application/octet-stream")
    if outcome == "miss":
        metrics.count("cache_misses")
        raise HTTPError(404, "Key Not Found")
    if request.method == "PUT":
        metrics.count("cache_bytes", len(value), "set")
    return Response(204)


OPERATIONS = {"GET": "get", "PUT": "set", "DELETE": "delete", "OPTIONS": "preflight"}


def operation(request: Request) -> str:
    """The request's operation, as the metrics name it."""
    return OPERATIONS.get(request.method, "other")


cache_app = lean_app(respond, unavailable="The cache is unavailable", face="cache", operation=operation)
