import asyncio
import weakref
from functools import cache, lru_cache

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

# ReadOnlyError: a write reached a primary that has since been demoted to a replica (a failover).
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)
# A Redis Cluster that cannot answer now (a node failing over, slots uncovered, no node reachable).
REDIS_ERRORS += (redis.exceptions.ClusterError, redis.exceptions.TryAgainError, redis.exceptions.RedisClusterException)


def _node_options(url: str) -> dict:
    """What REDIS_URL says of every node behind Sentinel (database, credentials, TLS), its address aside."""
    options = parse_url(url)
    for name in ("host", "port", "path", "connection_class"):
        options.pop(name, None)
    return {**options, "ssl": url.startswith("rediss://")}


def _sentinel_options(timeout: int, password: str) -> dict:
    """For asking the Sentinels: one try each (an unreachable one is skipped for the next), bounded by `timeout`."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0)}
    return {**options, "password": password} if password else options


@lru_cache(maxsize=8)
def _client(url: str, timeout: int, sentinels: tuple, master: str, sentinel_password: str) -> redis.Redis:
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "health_check_interval": 30}
    if not sentinels:
        return redis.Redis.from_url(url, **options)
    sentinel = redis.sentinel.Sentinel(sentinels, sentinel_kwargs=_sentinel_options(timeout, sentinel_password))
    return sentinel.master_for(master, **_node_options(url), **options)


def get_redis() -> redis.Redis:
    """The process's Redis client (a connection pool) for REDIS_URL, or for the primary the
    Sentinels name when REDIS_SENTINELS is set: after a failover its connections find the new one."""
    return _client(
        settings.REDIS_URL,
        settings.REDIS_SOCKET_TIMEOUT,
        settings.REDIS_SENTINELS,
        settings.REDIS_SENTINEL_MASTER,
        settings.REDIS_SENTINEL_PASSWORD,
    )


class QuickBlockingConnectionPool(redis.asyncio.BlockingConnectionPool):
    """redis-py's blocking pool (past max_connections a command waits for a free connection,
    up to its timeout, rather than failing), that hands out and takes back a connection
    directly when one is free and no command waits for one.

    The parent's way takes a lock, arms a timer and calls observability and event hooks
    twice per command: on the cache path that was a fifth of a request's CPU, more than
    the rest of the command. Its way is kept whenever a command waits (so that a release
    wakes it) or the pool is being moved (a maintenance notification). What the direct
    way skips: redis-py's own OpenTelemetry connection counts (not configured here) and
    the after-release event (it serves credential providers, not used here).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._waiting = 0  # commands inside the parent's get_connection

    async def get_connection(self, command_name=None, *keys, **options):
        if self._available_connections and not self._waiting and not self._in_maintenance:
            connection = self._available_connections.pop()
            self._in_use_connections.add(connection)
            try:
                await self.ensure_connection(connection)  # connected, nothing unread: as the parent checks
            except BaseException:
                await self.release(connection)
                raise
            return connection
        self._waiting += 1
        try:
            return await super().get_connection()
        finally:
            self._waiting -= 1

    async def release(self, connection) -> None:
        if self._waiting or self._in_maintenance:
            await super().release(connection)  # wakes a waiting command
            return
        self._in_use_connections.remove(connection)
        if connection.should_reconnect():
            await connection.disconnect()
        self._available_connections.append(connection)


class BlockingSentinelConnectionPool(redis.asyncio.sentinel.SentinelConnectionPool, QuickBlockingConnectionPool):
    """Sentinel's pool (each new connection asks the Sentinels for the primary) that waits for a
    free connection when all are in use, as the pool of a plain REDIS_URL does."""


class _GuardedConnection:
    """redis.asyncio's connection, with two changes to how it writes a command.

    uvloop (the web processes' event loop) raises RuntimeError, not OSError, when a command
    is written to a connection whose transport it has already closed because Redis closed it
    (a restart, a failover); and a connection closed while it was being opened (its handshake
    under way) has no writer left: each is made the ConnectionError it is, a 503 or a command
    sent again.

    With a socket timeout, redis-py writes each command under `asyncio.wait_for`, which on
    Python 3.11 makes a task of its own per command (about 9 µs; a cache request costs about
    150 µs of CPU in all). A write can only wait when the transport's buffer would pass its
    high-water mark (the transport then pauses the writer until Redis reads): a command that
    fits is written by redis-py's same code without the timer, its errors handled as ever;
    a larger one, or one on a connection not yet open, under the timeout, as redis-py does.
    """

    async def send_packed_command(self, command, check_health: bool = True) -> None:
        timeout = self.socket_timeout
        if not timeout or not self.is_connected:
            return await super().send_packed_command(command, check_health)
        if check_health:
            await self.check_health()  # may open the connection again: its buffer is looked at after
        if not self._taken_at_once(command):
            return await super().send_packed_command(command, check_health=False)
        # For this write alone: it completes without the event loop running anything else (the writer is not
        # paused), so nothing else using the connection (a pub/sub reader) sees the timeout set aside.
        self.socket_timeout = None
        try:
            await super().send_packed_command(command, check_health=False)
        except RuntimeError as error:  # written without _send_packed_command: the same as it raises
            raise redis.ConnectionError(f"Writing to a closed connection: {error}") from error
        finally:
            self.socket_timeout = timeout

    def _taken_at_once(self, command) -> bool:
        """Whether the transport takes `command` (packed: bytes, or a list of them) with its writer not paused
        and not pausing it: a transport pauses its writer once its buffer passes the high-water mark, and lets
        it go on only once the buffer is back under the low one."""
        if isinstance(command, bytes):
            size = len(command)
        elif isinstance(command, list):
            size = sum(len(part) for part in command)
        else:
            return False
        transport = self._writer.transport if self._writer is not None else None
        if transport is None or transport.is_closing():
            return False
        low, high = transport.get_write_buffer_limits()
        buffered = transport.get_write_buffer_size()
        return buffered <= low and buffered + size <= high

    async def _send_packed_command(self, command) -> None:
        if self._writer is None:  # nothing is awaited between this and the write
            raise redis.ConnectionError("The connection was closed before the command was written.")
        try:
            await super()._send_packed_command(command)
        except RuntimeError as error:
            raise redis.ConnectionError(f"Writing to a closed connection: {error}") from error


@cache
def guarded(connection_class: type) -> type:
    """`connection_class` (redis.asyncio's), with a closed transport a ConnectionError and a command that fits
    the transport's buffer written without a timer (`_GuardedConnection`)."""
    return type(connection_class.__name__, (_GuardedConnection, connection_class), {})


# An asyncio client belongs to the event loop that made it: one per loop and set of Redis settings.
_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _async_client(timeout: int) -> redis.asyncio.Redis:
    options = {
        "max_connections": settings.REDIS_MAX_CONNECTIONS,
        "timeout": timeout,  # seconds to wait for a free connection
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        # A pooled connection that Redis closed (it restarted, or failed over and dropped its
        # clients) fails its next command: that command is tried once more, at once, on a new
        # connection. Not after a timeout: a Redis that does not answer fails within the timeout.
        # A command that ran but whose answer was lost runs twice, as when a client retries a 503.
        "retry": redis.asyncio.retry.Retry(NoBackoff(), 1),
        "retry_on_error": [redis.ConnectionError],
    }
    if not settings.REDIS_SENTINELS:
        client = redis.asyncio.Redis(
            connection_pool=QuickBlockingConnectionPool.from_url(settings.REDIS_URL, **options)
        )
    else:
        sentinel = redis.asyncio.sentinel.Sentinel(
            settings.REDIS_SENTINELS, sentinel_kwargs=_sentinel_options(timeout, settings.REDIS_SENTINEL_PASSWORD)
        )
        client = sentinel.master_for(
            settings.REDIS_SENTINEL_MASTER,
            connection_pool_class=BlockingSentinelConnectionPool,
            **_node_options(settings.REDIS_URL),
            **options,
        )
    pool = client.connection_pool  # makes its connections when first needed
    pool.connection_class = guarded(pool.connection_class)
    return client


def get_async_redis() -> redis.asyncio.Redis:
    """The running event loop's asyncio Redis client for REDIS_URL (through Sentinel when REDIS_SENTINELS is set)."""
    loop = asyncio.get_running_loop()
    clients = _async_clients.setdefault(loop, {})
    key = (
        settings.REDIS_URL,
        settings.REDIS_SOCKET_TIMEOUT,
        settings.REDIS_SENTINELS,
        settings.REDIS_SENTINEL_MASTER,
        settings.REDIS_SENTINEL_PASSWORD,
    )
    client = clients.get(key)
    if client is None:
        client = clients[key] = _async_client(settings.REDIS_SOCKET_TIMEOUT)
    return client


# --- The data faces' Redis: a Redis Cluster when DATA_REDIS_CLUSTER_NODES is set ---------
#
# Cache items, topic streams and the cache and topics rate limits live here; everything
# else (other rate limits, metrics, the Celery broker) stays on REDIS_URL. A cluster
# client follows MOVED and ASK itself, and retries a command a few times while a node
# fails over; past that the command raises one of REDIS_ERRORS (a 503).

CLUSTER_RETRIES = 3  # attempts after the first, with a backoff of at most a second between them


def data_is_cluster() -> bool:
    """Whether the data faces use a Redis Cluster (DATA_REDIS_CLUSTER_NODES) rather than REDIS_URL."""
    return bool(settings.DATA_REDIS_CLUSTER_NODES)


def _cluster_settings() -> tuple[tuple[str, ...], str, int]:
    return tuple(settings.DATA_REDIS_CLUSTER_NODES), settings.DATA_REDIS_CLUSTER_PASSWORD, settings.REDIS_SOCKET_TIMEOUT


def _cluster_client(module, nodes: tuple[str, ...], password: str, timeout: int, **options):
    """A `module.RedisCluster` (redis.cluster or redis.asyncio.cluster) started from `nodes` ("host:port")."""
    node_options = {"connection_class": guarded(redis.asyncio.Connection)} if module is redis.asyncio.cluster else {}
    startup = [
        module.ClusterNode(host, int(port), **node_options)
        for host, _, port in (node.rpartition(":") for node in nodes)
    ]
    client = module.RedisCluster(
        startup_nodes=startup,
        password=password or None,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1), CLUSTER_RETRIES),
        **options,
    )
    if node_options:  # the nodes it discovers too
        client.nodes_manager.connection_kwargs.update(node_options)
    return client


@lru_cache(maxsize=4)
def _sync_cluster_client(nodes: tuple[str, ...], password: str, timeout: int) -> redis.cluster.RedisCluster:
    return _cluster_client(redis.cluster, nodes, password, timeout)


def get_data_redis() -> redis.Redis | redis.cluster.RedisCluster:
    """The process's client for cache items and topic streams: the cluster's, or REDIS_URL's."""
    return _sync_cluster_client(*_cluster_settings()) if data_is_cluster() else get_redis()


DataClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

# The data faces' client of the event loop that asked last, while the settings stand: asked for on every cache and
# topics request, where finding it again (the loop's clients, the settings that name one) costs a few µs.
_last_data_client: tuple[asyncio.AbstractEventLoop, DataClient] | None = None


@receiver(setting_changed)
def _forget_last_data_client(**kwargs) -> None:
    global _last_data_client
    _last_data_client = None


def get_async_data_redis() -> DataClient:
    """The running event loop's client for cache items and topic streams: the cluster's, or REDIS_URL's."""
    global _last_data_client
    loop = asyncio.get_running_loop()
    last = _last_data_client
    if last is not None and last[0] is loop:
        return last[1]
    client = _async_data_client(loop)
    _last_data_client = (loop, client)
    return client


def _async_data_client(loop: asyncio.AbstractEventLoop) -> DataClient:
    if not data_is_cluster():
        return get_async_redis()
    clients = _async_clients.setdefault(loop, {})
    key = ("cluster", *_cluster_settings())
    client = clients.get(key)
    if client is None:
        # REDIS_MAX_CONNECTIONS per node: a node's pool does not wait for a free connection, it fails (a 503).
        client = clients[key] = _cluster_client(
            redis.asyncio.cluster, *key[1:], max_connections=settings.REDIS_MAX_CONNECTIONS
        )
    return client


def data_primaries(client) -> list[redis.Redis]:
    """A client per primary that holds data faces' keys: each cluster primary's, or `client` itself."""
    if isinstance(client, redis.cluster.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]
