import asyncio
import weakref
from functools import lru_cache

import redis
import redis.asyncio
from django.conf import settings

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)


@lru_cache(maxsize=8)
def _client(url: str, timeout: int) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30)


def get_redis() -> redis.Redis:
    """The process's Redis client (a connection pool) for REDIS_URL."""
    return _client(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)


# An asyncio client belongs to the event loop that made it: one per loop and URL.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_async_redis() -> redis.asyncio.Redis:
    """The running event loop's asyncio Redis client for REDIS_URL."""
    loop = asyncio.get_running_loop()
    clients = _async_clients.setdefault(loop, {})
    key = (settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)
    client = clients.get(key)
    if client is None:
        timeout = settings.REDIS_SOCKET_TIMEOUT
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=settings.REDIS_MAX_CONNECTIONS,
            timeout=timeout,  # seconds to wait for a free connection
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
        client = clients[key] = redis.asyncio.Redis(connection_pool=pool)
    return client
