"""Real replicated stores for tests: a Redis Cluster (3 primaries + 3 replicas) and a Sentinel
trio watching a primary and its replica. Built from ``redis-server`` processes like
``tests.services.RedisServer``, on loopback ports with temp dirs; nothing is mocked.

Both fail over fast (a primary is declared down after about a second), so a test can kill a
primary mid-run and wait for its replica to take over.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
from pathlib import Path

import redis

from tests.services import RedisServer, wait_until

# A cluster node also listens on port + 10000 (the cluster bus), which must stay a valid port.
_BUS_OFFSET = 10000
_PORT_RANGE = (20000, 45000)
NODE_TIMEOUT_MS = 1000
SENTINEL_SERVICE = "tpstore"


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(taken: set[int]) -> int:
    """A port that is free, whose bus port (port + 10000) is free too, below 55535."""
    while True:
        port = random.randint(*_PORT_RANGE)
        if {port, port + _BUS_OFFSET} & taken:
            continue
        if _bindable(port) and _bindable(port + _BUS_OFFSET):
            taken |= {port, port + _BUS_OFFSET}
            return port


class ClusterStore:
    """``redis-server --cluster-enabled yes`` nodes joined by ``redis-cli --cluster create``:
    3 primaries with one replica each by default (``replicas=0``: primaries only, as a
    benchmark that counts every node's CPU wants)."""

    def __init__(self, workdir: Path, primaries: int = 3, replicas: int = 1) -> None:
        self.workdir = workdir
        self.replicas = replicas
        self.size = primaries * (1 + replicas)
        taken: set[int] = set()
        self.nodes = [self._node(i, free_cluster_port(taken)) for i in range(self.size)]

    def _node(self, index: int, port: int) -> RedisServer:
        workdir = self.workdir / f"node{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        return RedisServer(workdir, port=port, extra_args=[
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(workdir / "nodes.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # a replica with stale data may still take over (the default refuses after a
            # while, which a test that kills a primary right after start-up would hit)
            "--cluster-replica-validity-factor", "0",
        ])

    @property
    def url(self) -> str:
        """The store URL: every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        for node in self.nodes:
            wait_until(lambda n=node: self._state_ok(n), timeout=30,
                       what=f"cluster_state:ok on node {node.port}")
        if self.replicas:
            wait_until(self._replicated, timeout=30, what="a replica for every primary")

    def _replicated(self) -> bool:
        """Every slot range lists a replica (one that has synced), so a primary may die."""
        ranges = self.nodes[0].client().execute_command("CLUSTER SLOTS")
        return all(len(entry) > 3 for entry in ranges)

    def _state_ok(self, node: RedisServer) -> bool:
        try:
            info = node.client().execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
            return info.get("cluster_state") == "ok"
        except redis.ConnectionError:
            return False

    def alive(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None]

    def owner_of(self, key: str) -> RedisServer:
        """The primary currently serving ``key``'s slot."""
        client = self.alive()[0].client()
        slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        for start, end, primary, *_replicas in client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                port = int(primary[1])
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no node serves slot {slot}")

    def wait_until_serving(self, key: str, timeout: float = 30.0) -> RedisServer:
        """After a primary died: wait until a live node serves ``key``'s slot and every live
        node reports the cluster ok again."""

        def served() -> RedisServer | None:
            try:
                owner = self.owner_of(key)
            except (redis.ConnectionError, LookupError):
                return None
            if owner.process is None or not all(self._state_ok(n) for n in self.alive()):
                return None
            return owner

        return wait_until(served, timeout=timeout, interval=0.1, what=f"a live owner of {key!r}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelStore:
    """A primary, one replica and three sentinels (quorum 2) watching them as
    ``SENTINEL_SERVICE``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        (workdir / "primary").mkdir(parents=True, exist_ok=True)
        (workdir / "replica").mkdir(parents=True, exist_ok=True)
        self.primary = RedisServer(workdir / "primary")
        self.replica = RedisServer(workdir / "replica", extra_args=[
            "--replicaof", "127.0.0.1", str(self.primary.port),
        ])
        self.sentinels: list[RedisServer] = []
        for index in range(3):
            directory = workdir / f"sentinel{index}"
            directory.mkdir(parents=True, exist_ok=True)
            self.sentinels.append(RedisServer(directory))

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}/0"

    def start(self) -> None:
        self.primary.start()
        self.replica.start()
        wait_until(lambda: self._link_up(), timeout=20, what="the replica in sync")
        for sentinel in self.sentinels:
            self._start_sentinel(sentinel)
        wait_until(lambda: all(self._sentinel_knows_all(s) for s in self.sentinels),
                   timeout=30, what="sentinels aware of each other and of the replica")

    def _link_up(self) -> bool:
        info = self.replica.client().info("replication")
        return info.get("master_link_status") == "up"

    def _start_sentinel(self, sentinel: RedisServer) -> None:
        conf = sentinel.workdir / "sentinel.conf"
        conf.write_text(
            f"port {sentinel.port}\nbind 127.0.0.1\ndir {sentinel.workdir}\n"
            f"logfile {sentinel.workdir / 'sentinel.log'}\n"
            f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {NODE_TIMEOUT_MS}\n"
            f"sentinel failover-timeout {SENTINEL_SERVICE} 5000\n"
            f"sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
        )
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        sentinel.process = subprocess.Popen(
            [binary, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(sentinel._answers_ping, timeout=10, what=f"sentinel on {sentinel.port}")

    def _sentinel_knows_all(self, sentinel: RedisServer) -> bool:
        client = sentinel.client()
        try:
            master = client.sentinel_master(SENTINEL_SERVICE)
        except redis.ResponseError:
            return False
        return int(master["num-other-sentinels"]) == 2 and int(master["num-slaves"]) == 1

    def current_primary_port(self) -> int:
        host_port = self.sentinels[0].client().sentinel_get_master_addr_by_name(SENTINEL_SERVICE)
        return int(host_port[1])

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until the sentinels name a new primary that answers as one."""

        def promoted() -> int | None:
            try:
                port = self.current_primary_port()
            except (redis.ConnectionError, TypeError):
                return None
            if port == old_port:
                return None
            role = redis.Redis(port=port).info("replication").get("role")
            return port if role == "master" else None

        return wait_until(promoted, timeout=timeout, interval=0.1, what="a sentinel failover")

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.primary):
            server.stop()
