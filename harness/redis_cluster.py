"""A Redis Cluster of real redis-server processes on free loopback ports, for tests and runs.

`redis_cluster(directory)` starts the primaries (no replicas, no persistence), joins them
with `redis-cli --cluster create`, waits until every node says the cluster is ok, and
stops them all on leaving. `RunningCluster.nodes` is what DATA_REDIS_CLUSTER_NODES takes.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

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
        try:
            return all(self.node(port).cluster("info")["cluster_state"] == "ok" for port in self.ports)
        except redis.RedisError:
            return False


@contextlib.contextmanager
def redis_cluster(directory: Path, *, primaries: int = 3, timeout: float = 30) -> Iterator[RunningCluster]:
    processes = Processes(log_dir=directory)
    cluster = RunningCluster([free_port() for _ in range(primaries)], processes)
    try:
        for port in cluster.ports:
            node_dir = directory / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            command = ["redis-server", "--bind", HOST, "--port", str(port), "--dir", str(node_dir)]
            command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            command += ["--cluster-port", str(free_port())]  # the bus port: by default port + 10000, maybe taken
            command += ["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"]
            processes.start(f"redis-{port}", command)
        for port, process in zip(cluster.ports, processes.started, strict=True):
            wait_until(
                lambda port=port, process=process: port_open(port) or not process.alive,
                what=f"the cluster node on {port} to listen",
                timeout=timeout,
            )
            if not process.alive:
                raise RuntimeError(f"The cluster node on {port} stopped: {process.output()}")
        subprocess.run(  # noqa: S603 - a command of our own
            ["redis-cli", "--cluster", "create", *cluster.nodes, "--cluster-yes"],  # noqa: S607
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        wait_until(cluster.ok, what="every cluster node to say the cluster is ok", timeout=timeout, every=0.1)
        yield cluster
    finally:
        processes.stop_all(grace=5)
