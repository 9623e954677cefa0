"""A Redis Cluster of real redis-server processes on free loopback ports, for tests and runs.

`redis_cluster(directory)` starts the primaries (no persistence; by default no replicas,
`replicas=1` gives each primary one), joins them with `redis-cli --cluster create`, waits
until every node says the cluster is ok (and every replica has synced), and stops them all
on leaving. `RunningCluster.nodes` is what DATA_REDIS_CLUSTER_NODES takes.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.cluster import key_slot

from .processes import Processes
from .waiting import HOST, free_port, port_open, wait_until


@dataclass
class RunningCluster:
    ports: list[int]
    processes: Processes

    @property
    def nodes(self) -> list[str]:
        return [f"{HOST}:{port}" for port in self.ports]

    def node(self, port: int) -> redis.Redis:
        """A plain client of the node on `port` (it answers only for its own slots)."""
        return redis.Redis(host=HOST, port=port, socket_timeout=5)

    def ok(self) -> bool:
        """Whether every node is up and says the cluster is ok."""
        return self.ok_on(self.ports)

    def ok_on(self, ports: list[int]) -> bool:
        """Whether every node of `ports` is up and says the cluster is ok."""
        try:
            return all(self.node(port).cluster("info")["cluster_state"] == "ok" for port in ports)
        except redis.RedisError:
            return False

    # --- Roles, and breaking one ------------------------------------------------------

    def alive(self) -> list[int]:
        """The ports whose process is still running."""
        return [port for port, process in zip(self.ports, self.processes.started, strict=True) if process.alive]

    def owner(self, key: bytes, *, asking: int | None = None) -> int:
        """The port of the primary that holds `key`'s slot, as the node on `asking` (or the first alive one) sees it."""
        slot = key_slot(key)
        for start, end, primary, *_ in self.node(asking or self.alive()[0]).execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
        raise LookupError(f"No node holds slot {slot}")

    def role(self, port: int) -> str | None:
        try:
            return self.node(port).info("replication")["role"]
        except redis.RedisError:
            return None

    def synced(self) -> bool:
        """Whether every replica among the running nodes has its link to its primary up."""
        try:
            for port in self.alive():
                replication = self.node(port).info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
        except redis.RedisError:
            return False
        return True

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port`."""
        self.processes.started[self.ports.index(port)].kill()

    def wait_for_promotion(self, key: bytes, old: int, *, timeout: float = 60) -> int:
        """Wait until every running node says the cluster is ok and names another primary than `old`
        for `key`'s slot, one that answers as a primary; its port."""

        def promoted() -> int | None:
            alive = self.alive()
            if not self.ok_on(alive):
                return None
            try:
                owners = {self.owner(key, asking=port) for port in alive}
            except (redis.RedisError, LookupError):
                return None
            new = owners.pop() if len(owners) == 1 else None
            return new if new not in (None, old) and self.role(new) == "master" else None

        what = f"a replica to take over from the primary on {old}"
        return wait_until(promoted, what=what, timeout=timeout, every=0.1)


@contextlib.contextmanager
def redis_cluster(
    directory: Path, *, primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 2000, timeout: float = 30
) -> Iterator[RunningCluster]:
    processes = Processes(log_dir=directory)
    cluster = RunningCluster([free_port() for _ in range(primaries * (1 + replicas))], processes)
    try:
        for port in cluster.ports:
            node_dir = directory / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            command = ["redis-server", "--bind", HOST, "--port", str(port), "--dir", str(node_dir)]
            command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            command += ["--cluster-port", str(free_port())]  # the bus port: by default port + 10000, maybe taken
            command += ["--cluster-node-timeout", str(node_timeout_ms), "--save", "", "--appendonly", "no"]
            processes.start(f"redis-{port}", command)
        for port, process in zip(cluster.ports, processes.started, strict=True):
            wait_until(
                lambda port=port, process=process: port_open(port) or not process.alive,
                what=f"the cluster node on {port} to listen",
                timeout=timeout,
            )
            if not process.alive:
                raise RuntimeError(f"The cluster node on {port} stopped: {process.output()}")
        create = ["redis-cli", "--cluster", "create", *cluster.nodes, "--cluster-yes"]
        if replicas:
            create += ["--cluster-replicas", str(replicas)]
        subprocess.run(create, check=True, capture_output=True, timeout=timeout)  # noqa: S603 - a command of our own
        wait_until(cluster.ok, what="every cluster node to say the cluster is ok", timeout=timeout, every=0.1)
        if replicas:
            wait_until(cluster.synced, what="every replica to sync with its primary", timeout=timeout, every=0.1)
        yield cluster
    finally:
        processes.stop_all(grace=5)
