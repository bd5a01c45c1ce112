"""The fleets and sandbox shapes the pipeline's end-to-end tests run on.

Fleets (a module opts in by overriding its `backends` fixture with `fleet_backends`):
- redis: the test Redis is the state store and the broker;
- rabbitmq: RabbitMQ is the broker (a vhost of this module's own), Redis the store;
- redis-cluster: a 3-master Redis Cluster on loopback is the store, and the broker is
  the test Redis, a separate single node.

Sandbox shapes: every pipeline module runs once per mode, the documented shapes and the
varied ones (`[]`/`null`/missing empty objects, `hydra:` prefixes, other offsets, unknown
fields). The shapes concern the Korus client, not the broker or the store, so the varied
mode runs on the redis fleet only. SANDBOX_SHAPES=documented|varied runs one mode only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from korus_sandbox.shapes import SHAPES
from tests.support.backends import Backends, unavailable
from tests.support.rabbitmq import rabbitmq_available, rabbitmq_vhost
from tests.support.redis_cluster import cluster_available, redis_cluster

FLEETS = ["redis", "rabbitmq", "redis-cluster"]
_ONLY_SHAPES = os.environ.get("SANDBOX_SHAPES")


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not cluster_available():
        unavailable("no redis-server/redis-cli to start a Redis Cluster")
    with redis_cluster(Path(tmp_path_factory.mktemp("cluster"))) as url:
        yield url


@pytest.fixture(scope="module", params=FLEETS)
def fleet_backends(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Backends]:
    if request.param == "redis":
        yield Backends("redis", redis_url)
    elif request.param == "rabbitmq":
        if not rabbitmq_available():
            unavailable("no RabbitMQ on 127.0.0.1:5672 (or no rabbitmqctl)")
        with rabbitmq_vhost() as broker_url:
            yield Backends("rabbitmq", redis_url, broker_url)
    else:
        cluster = request.getfixturevalue("cluster_url")
        yield Backends("redis-cluster", cluster, redis_url)


@pytest.fixture(scope="module", params=[_ONLY_SHAPES] if _ONLY_SHAPES else list(SHAPES))
def sandbox_shapes(request: pytest.FixtureRequest) -> str:
    shapes = str(request.param)
    if shapes != "documented" and "fleet_backends" in request.fixturenames:
        fleet = request.getfixturevalue("backends").name
        if fleet != "redis":
            pytest.skip("the varied sandbox shapes run on the redis fleet only")
    return shapes
