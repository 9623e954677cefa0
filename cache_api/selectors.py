from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

from core.db import close_stale_connections
from core.lookups import TrustedLookups

from .models import Cache


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


def _trust(info: CacheInfo | None) -> float:
    return settings.CACHE_LOOKUP_SECONDS if info is not None else min(1, settings.CACHE_LOOKUP_SECONDS)


_known = TrustedLookups(sync_to_async(cache_info), trust=_trust)


async def acache_info(name: str) -> CacheInfo | None:
    """`cache_info`, trusted for CACHE_LOOKUP_SECONDS (an unknown name for at most 1 s),
    so the data path does not query the database on every request."""
    return await _known.get(name, name)


def trusted_cache_info(name: str):
    """What a trusted lookup of the cache `name` found, without looking again; MISSING when none is trusted now."""
    return _known.peek(name)


def forget_known_caches() -> None:
    _known.forget()
