"""Open the state store's Redis: one server, or a Redis Cluster, chosen by REDIS_URL.

The scheme selects the mode, so one variable says everything and a cluster cannot be
half-configured:

- `redis://`, `rediss://`, `unix://`: one Redis server (database number in the path);
- `redis+cluster://[user:password@]host:port[,host:port...][/0]` (and `rediss+cluster://`
  for TLS): a Redis Cluster reached through the listed seed nodes (one is enough, the
  client discovers the others; list several so a start does not depend on one node).
  A cluster has only database 0.

Everything the store writes in one script lives under one hash tag (keys.py), and every
multi-key pipeline is non-transactional, so the same code runs on both modes. The
Celery broker is never the cluster (kombu's Redis transport needs one server): with a
cluster, BROKER_URL names a single Redis or RabbitMQ (settings.py enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, unquote

import redis
from redis.cluster import ClusterNode, RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


@dataclass(frozen=True)
class ClusterAddress:
    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    tls: bool

    def seed_url(self) -> str:
        """A plain `redis://` URL of the first seed node (for clients that take one URL)."""
        host, port = self.nodes[0]
        auth = ""
        if self.password is not None:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{port}/0"


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterAddress:
    """The seed nodes and credentials of a `redis+cluster://` URL; ValueError if malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in CLUSTER_SCHEMES:
        raise ValueError("a Redis Cluster URL starts with redis+cluster:// or rediss+cluster://")
    rest = rest.split("?", 1)[0]
    location, _, path = rest.partition("/")
    if path not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0 (drop the /N path)")
    userinfo, at, hosts = location.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"seed node {item.strip()!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    return ClusterAddress(tuple(nodes), username, password, tls=scheme == "rediss+cluster")


def connect(url: str, **options: Any) -> redis.Redis:
    """A client for `url`: redis.Redis, or RedisCluster for a `redis+cluster://` URL.

    RedisCluster offers the commands, pipelines and scripts the store uses with the same
    signatures (it routes each by its key's slot), so callers type it as redis.Redis.
    """
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **options)
    address = parse_cluster_url(url)
    options.pop("health_check_interval", None)  # per-connection option of one server
    cluster = RedisCluster(
        startup_nodes=[
            ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in address.nodes
        ],
        username=address.username,
        password=address.password,
        ssl=address.tls,
        **options,
    )
    return cast(redis.Redis, cluster)

