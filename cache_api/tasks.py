from celery import shared_task

from core.redis import get_data_redis


@shared_task(acks_late=True, time_limit=600, soft_time_limit=570)
def cache_items_purge(cache_id: int) -> int:
    """Remove the items of deleted cache `cache_id` from Redis."""
    from .services import cache_items_remove

    return cache_items_remove(cache_id=cache_id, redis_client=get_data_redis())
