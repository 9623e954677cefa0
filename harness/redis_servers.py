"""Redis servers of a test's or scenario's own: a primary, a replica and three Sentinels on free loopback ports.

`SentinelGroup` starts them from config files in a directory of its own, with short
Sentinel timings (a primary is judged down after `DOWN_AFTER_MS` without answering)
so that a failover plays out in seconds, and waits until every Sentinel knows the
primary, the replica and the other Sentinels before it returns. Nothing is persisted.
"""

from __future__ import annotations

from pathlib import Path

import redis

from .processes import Process, stop_all
from .waiting import HOST, free_port, wait_until

DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
SENTINELS = 3


class SentinelGroup:
    """A monitored primary (named `master_name`), one replica and three Sentinels (quorum 2).

    The data nodes ask for `password` (as REDIS_URL gives it), the Sentinels for
    `sentinel_password` (REDIS_SENTINEL_PASSWORD)."""

    def __init__(self, home: Path, *, master_name: str, password: str, sentinel_password: str):
        self.home = home
        self.master_name = master_name
        self.password = password
        self.sentinel_password = sentinel_password
        self.node_ports = [free_port(), free_port()]  # the first starts as the primary
        self.sentinel_ports = [free_port() for _ in range(SENTINELS)]
        self.nodes: dict[int, Process] = {}
        self.sentinels: list[Process] = []

    # --- Starting and stopping ---------------------------------------------

    def start(self) -> SentinelGroup:
        primary, replica = self.node_ports
        self._start_node(primary)
        self._start_node(replica, "replicaof", HOST, str(primary))
        wait_until(
            lambda: self._node(replica).info("replication")["master_link_status"] == "up",
            what="the replica to sync",
            timeout=30,
        )
        for port in self.sentinel_ports:
            config = self.home / f"sentinel-{port}.conf"
            config.write_text(self._sentinel_config(port, primary))
            self.sentinels.append(
                Process(f"sentinel-{port}", ["redis-server", str(config), "--sentinel"], log=self._log(port)).start()
            )
        wait_until(
            self._sentinels_agree, what="every Sentinel to know the primary, the replica and the others", timeout=60
        )
        return self

    def _start_node(self, port: int, *options: str) -> None:
        command = ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.home), "--requirepass", self.password, "--masterauth", self.password]
        if options:
            command += [f"--{options[0]}", *options[1:]]
        self.nodes[port] = Process(f"redis-{port}", command, log=self._log(port)).start()
        wait_until(lambda: self._answers(self._node(port)), what=f"Redis on port {port} to start", timeout=20)

    def _sentinel_config(self, port: int, primary: int) -> str:
        name = self.master_name
        return "\n".join(
            [
                f"port {port}",
                f"bind {HOST}",
                f"dir {self.home}",
                f"requirepass {self.sentinel_password}",
                f"sentinel monitor {name} {HOST} {primary} 2",
                f"sentinel auth-pass {name} {self.password}",
                f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {name} 1",
                "",
            ]
        )

    def _log(self, port: int) -> Path:
        return self.home / f"{port}.log"

    def stop(self) -> None:
        stop_all([*self.sentinels, *self.nodes.values()], grace=5)

    # --- Looking and breaking -------------------------------------------------

    @property
    def sentinel_addresses(self) -> str:
        """The Sentinels as REDIS_SENTINELS lists them."""
        return ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)

    def url(self, db: int = 0) -> str:
        """REDIS_URL through Sentinel: only its password and database number count."""
        return f"redis://:{self.password}@{HOST}:{self.primary}/{db}"

    @property
    def primary(self) -> int:
        """The port of the node every Sentinel reports as the primary (the first Sentinel's word)."""
        return int(self._sentinel(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(self.master_name)[1])

    def fail_over(self) -> int:
        """Have the Sentinels promote the replica; the new primary's port, once the old one,
        still up, has been turned into its replica (writes to it are then refused)."""
        old = self.primary
        self._sentinel(self.sentinel_ports[0]).sentinel_failover(self.master_name)
        new = self.wait_for_new_primary(old)
        wait_until(lambda: self._role(old) == "slave", what=f"port {old} to become a replica", timeout=30, every=0.1)
        return new

    def kill_primary(self) -> int:
        """SIGKILL the primary; its port (the Sentinels then promote the replica)."""
        old = self.primary
        self.nodes[old].kill()
        return old

    def wait_for_new_primary(self, old: int, *, timeout: float = 60) -> int:
        """Wait until every Sentinel names another primary than `old` and it answers writes; its port."""

        def promoted() -> int | None:
            ports = {self._master_port(port) for port in self.sentinel_ports}
            new = ports.pop() if len(ports) == 1 else None
            if new in (None, old):
                return None
            return new if self._role(new) == "master" else None

        return wait_until(
            promoted, what=f"the Sentinels to promote a new primary in place of port {old}", timeout=timeout, every=0.1
        )

    # --- Asking them ----------------------------------------------------------------

    def _node(self, port: int) -> redis.Redis:
        return redis.Redis(host=HOST, port=port, password=self.password, socket_timeout=2, socket_connect_timeout=2)

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(
            host=HOST, port=port, password=self.sentinel_password, socket_timeout=2, socket_connect_timeout=2
        )

    def _role(self, port: int) -> str | None:
        try:
            return self._node(port).info("replication")["role"]
        except redis.RedisError:
            return None

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    def _master_port(self, sentinel_port: int) -> int | None:
        try:
            return int(self._sentinel(sentinel_port).sentinel_get_master_addr_by_name(self.master_name)[1])
        except (redis.RedisError, TypeError):
            return None

    def _sentinels_agree(self) -> bool:
        try:
            for port in self.sentinel_ports:
                state = self._sentinel(port).sentinel_master(self.master_name)
                if state["num-slaves"] < 1 or state["num-other-sentinels"] < SENTINELS - 1:
                    return False
        except redis.RedisError:
            return False
        return True
