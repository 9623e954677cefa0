"""Caches: creating one (recording who did), deleting one with its items."""

import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.redis import data_primaries

from .keys import cache_patterns
from .models import NAME_PATTERN, NAME_RULE, Cache
from .selectors import announce_created_cache
from .tasks import cache_items_purge

PURGE_BATCH = 1000


def cache_name_validate(name: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name):
        raise ValidationError({"name": [NAME_RULE]})


def cache_create(
    *, name: str, max_item_bytes: int | None = None, max_ttl_seconds: int | None = None, created_by=None
) -> tuple[Cache, bool]:
    """The cache with this name, and whether it was created now (by `created_by`, a user or None)."""
    cache_name_validate(name)
    existing = Cache.objects.filter(name=name).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            cache = Cache(
                name=name, max_item_bytes=max_item_bytes, max_ttl_seconds=max_ttl_seconds, created_by=created_by
            )
            cache.full_clean()
            cache.save()
            transaction.on_commit(announce_created_cache)
    except IntegrityError:  # created by a concurrent request
        return Cache.objects.get(name=name), False
    return cache, True


def cache_delete(*, cache: Cache) -> None:
    """Delete the cache now; its items are removed from Redis in the background."""
    cache_id = cache.pk
    cache.delete()
    transaction.on_commit(lambda: cache_items_purge.delay(cache_id))


def cache_items_remove(*, cache_id: int, redis_client) -> int:
    """Remove a deleted cache's items and topics from Redis without blocking it (SCAN + UNLINK),
    on every primary of a Redis Cluster."""
    removed = 0
    for node in data_primaries(redis_client):
        for pattern in cache_patterns(cache_id):
            batch = []
            for key in node.scan_iter(match=pattern, count=PURGE_BATCH):
                batch.append(key)
                if len(batch) >= PURGE_BATCH:
                    removed += _unlink(node, batch)
                    batch = []
            if batch:
                removed += _unlink(node, batch)
    return removed


def _unlink(node, keys: list[bytes]) -> int:
    """UNLINK `keys` in one round trip, one command per key: a cluster node refuses one UNLINK
    of keys in different slots."""
    pipe = node.pipeline(transaction=False)
    for key in keys:
        pipe.unlink(key)
    return sum(pipe.execute())
