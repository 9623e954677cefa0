# ruff: noqa: S603, S607 - runs redis-server, redis-cli and rabbitmqctl, found on PATH
"""The stores of the HA topology run that the harness does not start: a Redis Cluster with a
replica for each primary, and a RabbitMQ vhost of the run's own.

`ReplicatedCluster` starts 2 x `primaries` cluster nodes on free loopback ports (no
persistence but each node's `nodes.conf`, so a node killed and started again rejoins as
it was), joins them with `redis-cli --cluster create ... --cluster-replicas 1`, and waits
until every primary has a replica in sync. `RabbitVhost` makes a vhost with `rabbitmqctl`
(so it runs as root) and deletes it, with every queue in it, at the end.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import redis

from harness.processes import Process, stop_all
from harness.waiting import HOST, port_open, wait_until

CLUSTER_NODE_TIMEOUT_MS = 2000  # a silent primary is failed over after about this long


class ReplicatedCluster:
    def __init__(self, home: Path, *, primaries: int = 3) -> None:
        self.home = home
        ports = distinct_free_ports(4 * primaries)
        self.ports = ports[: 2 * primaries]
        self.bus_ports = dict(zip(self.ports, ports[2 * primaries :], strict=True))  # by default port + 10000
        self.nodes: dict[int, Process] = {}
        self.started: list[Process] = []  # every start, so that each is stopped

    @property
    def addresses(self) -> list[str]:
        """What DATA_REDIS_CLUSTER_NODES takes."""
        return [f"{HOST}:{port}" for port in self.ports]

    def start(self) -> ReplicatedCluster:
        for port in self.ports:
            self.start_node(port)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *self.addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        try:
            wait_until(self.healthy, what="every cluster primary to have a replica in sync", timeout=60, every=0.2)
        except TimeoutError as error:
            raise RuntimeError(f"{error} {self.state()}") from None
        return self

    def start_node(self, port: int) -> None:
        directory = self.home / f"cluster-{port}"
        directory.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--bind", HOST, "--port", str(port), "--dir", str(directory)]
        command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        command += ["--cluster-port", str(self.bus_ports[port])]
        command += ["--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no"]
        process = Process(f"cluster-{port}", command, log=self.home / f"cluster-{port}.log").start()
        self.nodes[port] = process
        self.started.append(process)
        wait_until(
            lambda: port_open(port) or not process.alive, what=f"the cluster node on {port} to listen", timeout=20
        )
        time.sleep(0.2)
        if not process.alive:
            raise RuntimeError(f"The cluster node on {port} stopped: {process.output()}")

    def stop(self) -> None:
        stop_all(self.started, grace=5)

    # --- looking ---

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host=HOST, port=port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)

    def view(self) -> dict[int, dict]:
        """The cluster as the first node that answers sees it: port -> {role, primary (a replica's port), slots}."""
        for port in self.ports:
            if not self.nodes[port].alive:
                continue
            try:
                lines = self.client(port).execute_command("CLUSTER", "NODES")
            except redis.RedisError:
                continue
            text = lines if isinstance(lines, str) else "\n".join(str(line) for line in lines)
            rows = [line.split() for line in text.splitlines() if line.strip()]
            ids = {row[0]: int(row[1].split("@")[0].rsplit(":", 1)[1]) for row in rows}
            view = {}
            for row in rows:
                flags = row[2].split(",")
                view[ids[row[0]]] = {
                    "role": "primary" if "master" in flags else "replica",
                    "failed": "fail" in flags or "fail?" in flags,
                    "primary": ids.get(row[3]),
                    "slots": row[8:],
                }
            return view
        return {}

    def primaries(self) -> list[int]:
        return sorted(port for port, node in self.view().items() if node["role"] == "primary" and node["slots"])

    def replica_of(self, primary: int) -> int | None:
        return next((port for port, node in self.view().items() if node["primary"] == primary), None)

    def state(self) -> str:
        """What each node says, for a message."""
        out = []
        for port in self.ports:
            try:
                info = self.client(port).info("replication")
                state = self.client(port).cluster("info")["cluster_state"]
                out.append(f"{port}: {state} {info['role']} link {info.get('master_link_status', '-')}")
            except redis.RedisError as error:
                out.append(f"{port}: {error}")
        return "; ".join(out)

    def healthy(self) -> bool:
        """Every node up and saying the cluster is ok, every primary with a replica whose link is up."""
        try:
            if not all(self.client(port).cluster("info")["cluster_state"] == "ok" for port in self.ports):
                return False
            view = self.view()
            primaries = [port for port, node in view.items() if node["role"] == "primary" and node["slots"]]
            for primary in primaries:
                replica = next((port for port, node in view.items() if node["primary"] == primary), None)
                if replica is None or self.client(replica).info("replication").get("master_link_status") != "up":
                    return False
            return len(primaries) == len(self.ports) // 2
        except (redis.RedisError, KeyError):
            return False

    def holder_of(self, pattern: str) -> int | None:
        """The primary holding a key matching `pattern` (the first it finds)."""
        for port in self.primaries():
            if next(iter(self.client(port).scan_iter(match=pattern, count=1000)), None) is not None:
                return port
        return None

    def keys_on(self, port: int, pattern: str, count: int) -> list[str]:
        found = []
        for key in self.client(port).scan_iter(match=pattern, count=1000):
            found.append(key)
            if len(found) >= count:
                break
        return found


def distinct_free_ports(count: int) -> list[int]:
    """`count` different ports on loopback that nothing listened on a moment ago (held open together while
    chosen, so that none is given twice)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind((HOST, 0))
        return [probe.getsockname()[1] for probe in probes]


def rabbitmqctl(*args: str) -> str:
    program = shutil.which("rabbitmqctl")
    if program is None:
        raise RuntimeError("rabbitmqctl is not installed: apt-get install -y rabbitmq-server")
    done = subprocess.run([program, *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


class RabbitVhost:
    """A vhost of the run's own on the local RabbitMQ (guest may use it), deleted by `delete`."""

    def __init__(self, host: str = HOST, port: int = 5672) -> None:
        self.host, self.port = host, port
        self.name = f"sbm-topology-ha-{uuid.uuid4().hex[:8]}"
        self.created = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/{self.name}"

    def create(self) -> RabbitVhost:
        if not port_open(self.port, self.host):
            raise RuntimeError(f"RabbitMQ at {self.host}:{self.port} is not reachable: rabbitmq-server -detached")
        rabbitmqctl("add_vhost", self.name)
        self.created = True
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def delete(self) -> None:
        if self.created:
            rabbitmqctl("delete_vhost", self.name)
            self.created = False
