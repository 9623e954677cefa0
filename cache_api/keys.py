"""Where a cache's data lives in Redis: every key carries the cache's id."""


def item_prefix(cache_id: int) -> bytes:
    return b"cache:%d:" % cache_id


def item_key(cache_id: int, key: bytes) -> bytes:
    return item_prefix(cache_id) + key


def topic_key(cache_id: int, topic: str) -> bytes:
    """The stream of a topic (topic names hold no ':')."""
    return b"topic:%d:%s" % (cache_id, topic.encode())


def topic_meta_key(cache_id: int, topic: str) -> bytes:
    """A topic's numbering: its page and last sequence number."""
    return topic_key(cache_id, topic) + b":meta"


def cache_patterns(cache_id: int) -> list[bytes]:
    """SCAN patterns that match every key of a cache: items and topics."""
    return [item_prefix(cache_id) + b"*", b"topic:%d:*" % cache_id]
