"""A throw-away Redis Cluster of 3 masters on loopback, from the machine's redis-server.

Ports come from 30001-30099 (each node also uses its port + 10000 for the cluster bus);
start-up waits are bounded and every node is stopped afterwards.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

PORT_RANGE = range(30001, 30100)
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def cluster_available() -> bool:
    return Path(REDIS_SERVER).exists() and Path(REDIS_CLI).exists()


def _free(port: int) -> bool:
    for candidate in (port, port + 10000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                return False
    return True


def _pick_ports(count: int) -> list[int]:
    ports = [port for port in PORT_RANGE if _free(port)][:count]
    if len(ports) < count:
        raise RuntimeError(f"fewer than {count} free ports in {PORT_RANGE}")
    return ports


def _wait(condition: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            if condition():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not within {timeout}s")


@contextlib.contextmanager
def redis_cluster(workdir: Path, masters: int = 3) -> Iterator[str]:
    """Start the nodes, join them (no replicas), wait for `cluster_state:ok`; yield the
    `redis+cluster://` URL listing every node as a seed."""
    ports = _pick_ports(masters)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node_dir = workdir / f"node-{port}"
            node_dir.mkdir(parents=True, exist_ok=True)
            argv = [
                REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000", "--dir", str(node_dir),
                "--save", "", "--appendonly", "no", "--logfile", "node.log",
            ]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
        clients = [redis.Redis(port=port, socket_timeout=2) for port in ports]
        for client in clients:
            _wait(client.ping, "node PING", 15)
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        for client in clients:
            _wait(lambda c=client: c.cluster("info")["cluster_state"] == "ok",
                  "cluster_state:ok", 30)
            client.close()
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
