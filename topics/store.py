"""A topic in Redis: a stream whose entry ids are the topic's sequence numbers.

Entry `<seq>-0` holds the kind (`t` text, `b` binary), the value and the publish
time in ms. A hash beside it holds the page and the last sequence number. Both
expire TOPICS_REPLAY_SECONDS after the last publish; the next publish then starts
a new page at sequence 1, which subscribers learn of as a discontinuity.

A publish is one Lua call that also counts the user's rate limits. On a Redis Cluster
(DATA_REDIS_CLUSTER_NODES) those counters are in another slot than the topic's keys, so
the limits are counted first, on the user's slot, and the script then touches the
topic's two keys alone (they share a hash tag: see cache_api/keys.py).
"""

import base64
import json
import time
from dataclasses import dataclass
from functools import cached_property

from django.conf import settings

from cache_api.keys import topic_key, topic_meta_key
from core.ratelimit import LUA_FUNCTIONS, acharge, counter_keys, limits, rate_limited
from core.redis import data_is_cluster, get_async_data_redis
from core.scripts import RedisScript

# KEYS: stream, meta. ARGV: kind, value, now ms, max length, max age ms. Answers {'ok', page, seq}.
APPEND = """
local now = tonumber(ARGV[3])
local page = redis.call('HGET', KEYS[2], 'page')
if not page then
  page = tostring(math.floor(now / 1000))
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'page', page, 'seq', 0)
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'k', ARGV[1], 'v', ARGV[2], 't', ARGV[3])
local cutoff = now - tonumber(ARGV[5])
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if tonumber(oldest[1][2][6]) < cutoff then
  local entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 200)
  local keep = entries[#entries][1]
  for _, entry in ipairs(entries) do
    if tonumber(entry[2][6]) >= cutoff then keep = entry[1] break end
  end
  redis.call('XTRIM', KEYS[1], 'MINID', keep)
end
local ttl = math.ceil(tonumber(ARGV[5]) / 1000)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {'ok', page, seq}
"""
# KEYS: stream, meta, request counter, byte counter. ARGV: APPEND's, then request limit, byte limit.
PUBLISH_SCRIPT = RedisScript(
    LUA_FUNCTIONS
    + """
if over_requests(KEYS[3], ARGV[6]) then return {'requests'} end
if over_bytes(KEYS[4], ARGV[7], string.len(ARGV[2])) then return {'bytes'} end
"""
    + APPEND
)
# A Redis Cluster's publish: the limits were counted before, on the user's slot.
APPEND_SCRIPT = RedisScript(APPEND)


@dataclass(frozen=True)
class Message:
    page: int
    seq: int
    binary: bool
    value: bytes

    def as_json(self) -> dict:
        value = {"binary": base64.b64encode(self.value).decode()} if self.binary else {"text": self.value.decode()}
        return {"topic_sequence_number": self.seq, "sequence_page": self.page, "value": value}

    # Encoded once per message (each form when first asked for), however many subscribers take it
    # from a feed's ring; the JSON itself is not kept, only the forms sent.
    @cached_property
    def item_json(self) -> bytes:
        """The message as a long poll's item: `{"item": {...}}`."""
        return b'{"item": ' + json.dumps(self.as_json()).encode() + b"}"

    @cached_property
    def sse_frame(self) -> bytes:
        """The message as a Server-Sent Event: `id: <page>:<seq>`, the item as `data`."""
        return b"id: %d:%d\ndata: %s\n\n" % (self.page, self.seq, json.dumps(self.as_json()).encode())


@dataclass(frozen=True)
class TopicState:
    page: int | None  # None: nothing published (or all of it expired)
    last_seq: int  # 0 when empty
    first_seq: int  # the oldest still in the window; last_seq + 1 when none is


@dataclass(frozen=True)
class TopicRef:
    cache_id: int
    cache_name: str
    name: str

    @property
    def key(self) -> bytes:
        return topic_key(self.cache_id, self.name)

    @property
    def meta_key(self) -> bytes:
        return topic_meta_key(self.cache_id, self.name)


def entry_seq(entry_id: bytes) -> int:
    return int(entry_id.split(b"-", 1)[0])


def messages_from(entries: list, page: int) -> list[Message]:
    return [
        Message(page=page, seq=entry_seq(entry_id), binary=fields[b"k"] == b"b", value=fields[b"v"])
        for entry_id, fields in entries
    ]


async def topic_publish(*, topic: TopicRef, user_id: int, value: bytes, binary: bool) -> tuple[int, int]:
    """Append a message; its (page, sequence number). HTTPError 429 past a rate limit."""
    keys = [topic.key, topic.meta_key]
    args = [
        "b" if binary else "t",
        value,
        int(time.time() * 1000),
        settings.TOPICS_REPLAY_LENGTH,
        settings.TOPICS_REPLAY_SECONDS * 1000,
    ]
    if data_is_cluster():
        await acharge(user_id, size=len(value))
        result = await APPEND_SCRIPT.run(get_async_data_redis(), keys, args)
    else:
        result = await PUBLISH_SCRIPT.run(get_async_data_redis(), [*keys, *counter_keys(user_id)], [*args, *limits()])
    if result[0] != b"ok":
        raise rate_limited(result[0].decode())
    return int(result[1]), int(result[2])


async def topic_state(topic: TopicRef) -> TopicState:
    async with get_async_data_redis().pipeline(transaction=False) as pipe:
        pipe.hmget(topic.meta_key, "page", "seq")
        pipe.xrange(topic.key, "-", "+", count=1)
        (page, last), first = await pipe.execute()
    if page is None:
        return TopicState(page=None, last_seq=0, first_seq=1)
    last_seq = int(last)
    return TopicState(page=int(page), last_seq=last_seq, first_seq=entry_seq(first[0][0]) if first else last_seq + 1)


async def topic_read(topic: TopicRef, *, page: int, from_seq: int, count: int) -> list[Message]:
    """Up to `count` messages from sequence number `from_seq` on."""
    entries = await get_async_data_redis().xrange(topic.key, f"{from_seq}-0", "+", count=count)
    return messages_from(entries, page)
