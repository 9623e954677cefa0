"""What the data path knows of caches, from a short in-process memory of database lookups.

A found cache is trusted for CACHE_LOOKUP_SECONDS. A name found missing is trusted for at
most a second, and only while the caches' generation in Redis (bumped by every creation)
is the one read before that lookup: a cache can be used as soon as its creation answered,
in every web process, while a client asking again and again for a missing cache costs one
Redis GET per request, not a database query.
"""

import logging
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from redis.exceptions import RedisError

from core.db import close_stale_connections
from core.lookups import MISSING, TrustedLookups
from core.redis import get_async_redis, get_redis

from .models import Cache

logger = logging.getLogger(__name__)

GENERATION_KEY = "caches:generation"


@dataclass(frozen=True)
class CacheInfo:
    """What the data path needs to know of a cache."""

    id: int
    name: str
    max_item_bytes: int
    max_ttl_seconds: int


def cache_info(name: str) -> CacheInfo | None:
    close_stale_connections()
    row = Cache.objects.filter(name=name).values_list("id", "max_item_bytes", "max_ttl_seconds").first()
    if row is None:
        return None
    cache_id, max_item_bytes, max_ttl_seconds = row
    return CacheInfo(
        id=cache_id,
        name=name,
        max_item_bytes=max_item_bytes or settings.CACHE_MAX_ITEM_BYTES,
        max_ttl_seconds=max_ttl_seconds or settings.CACHE_MAX_TTL_SECONDS,
    )


@dataclass(frozen=True)
class Absent:
    """A lookup that found no cache, made while the caches' generation was `generation`
    (None: Redis could not say, so the answer is not to be trusted beyond its request)."""

    generation: bytes | None


async def _generation() -> bytes | None:
    """The caches' generation now: b"" before any creation; None when Redis cannot say."""
    try:
        return await get_async_redis().get(GENERATION_KEY) or b""
    except RedisError:
        return None


async def _lookup(name: str) -> CacheInfo | Absent:
    generation = await _generation()  # before the query: a creation that the query misses bumps it after
    info = await sync_to_async(cache_info)(name)
    return info if info is not None else Absent(generation)


def _trust(answer: CacheInfo | Absent) -> float:
    return settings.CACHE_LOOKUP_SECONDS if isinstance(answer, CacheInfo) else min(1, settings.CACHE_LOOKUP_SECONDS)


_known = TrustedLookups(_lookup, trust=_trust)


async def acache_info(name: str) -> CacheInfo | None:
    """`cache_info`, trusted for CACHE_LOOKUP_SECONDS, so the data path does not query the
    database on every request; a missing name is looked up again once a cache was created."""
    answer = await _known.get(name, name)
    if isinstance(answer, CacheInfo):
        return answer
    if answer.generation is None or answer.generation != await _generation():
        _known.discard(name)
        answer = await _known.get(name, name)
    return answer if isinstance(answer, CacheInfo) else None


def trusted_cache_info(name: str):
    """The cache a trusted lookup of `name` found, without looking again; MISSING when none is trusted now."""
    answer = _known.peek(name)
    return answer if isinstance(answer, CacheInfo) else MISSING


def announce_created_cache() -> None:
    """Tell every web process's lookups that a cache was created (call once it is committed):
    a name they found missing is looked up again at its next request."""
    try:
        get_redis().incr(GENERATION_KEY)
    except RedisError as error:  # the creation stands; its name answers within a second
        logger.warning("Could not announce a created cache to the web processes: %s", error)


def forget_known_caches() -> None:
    _known.forget()
