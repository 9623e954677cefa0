"""Where a cache's data lives in Redis: every key carries the cache's id; and the names
that may reach a lookup at all.

On a Redis Cluster the keys spread over the slots: an item's key is hashed whole (unless
the client's key holds a `{...}` hash tag of its own, which then places it), and a topic's
stream and meta keys share the hash tag `{<cache id>:<topic>}`, so that a publish touches
one slot while different topics spread.

A name is checked against its rule before anything looks it up: a NUL, a newline or
any other byte outside the rule is a 400 from the data paths, never a query.
"""

import re

from .models import NAME_PATTERN, NAME_RULE

CACHE_NAME = re.compile(NAME_PATTERN.removeprefix("^").removesuffix("$"))


def cache_name_error(name: str) -> str | None:
    """What is wrong with `name` as a cache name (the rule), or None when it is one."""
    return None if CACHE_NAME.fullmatch(name) else NAME_RULE


def item_prefix(cache_id: int) -> bytes:
    return b"cache:%d:" % cache_id


def item_key(cache_id: int, key: bytes) -> bytes:
    return item_prefix(cache_id) + key


def topic_key(cache_id: int, topic: str) -> bytes:
    """The stream of a topic (topic names hold no ':', '{' or '}')."""
    return b"topic:{%d:%s}" % (cache_id, topic.encode())


def topic_meta_key(cache_id: int, topic: str) -> bytes:
    """A topic's numbering: its page and last sequence number."""
    return topic_key(cache_id, topic) + b":meta"


def cache_patterns(cache_id: int) -> list[bytes]:
    """SCAN patterns that match every key of a cache: items and topics."""
    return [item_prefix(cache_id) + b"*", b"topic:{%d:*" % cache_id]
