"""The state store and the broker a test deployment runs on, and how tests reach them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NoReturn

import pytest
from celery import Celery
from redis.cluster import RedisCluster

from worker.queues import is_amqp, priorities, task_queues
from worker.redis_connect import connect


@dataclass(frozen=True)
class Backends:
    name: str
    redis_url: str  # REDIS_URL: the state store (one server or a Redis Cluster)
    broker_url: str | None = None  # BROKER_URL; None: the store's Redis is the broker

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    def flush(self) -> None:
        """Empty the store, and a Redis broker (its queues) when it is a separate one."""
        flush_redis(self.redis_url)
        if self.broker_url and not is_amqp(self.broker_url):
            flush_redis(self.broker_url)

    def app(self) -> Celery:
        """A Celery app publishing like the workers of this deployment: the test process's
        own app (configured once from REDIS_URL) when the broker is that Redis, else one
        with this broker's queue declarations and priority direction."""
        from worker.app import app

        if self.effective_broker_url == app.conf.broker_url:
            return app
        return broker_app(self.effective_broker_url)


def flush_redis(url: str) -> None:
    client = connect(url)
    try:
        if isinstance(client, RedisCluster):
            client.flushall(target_nodes=RedisCluster.PRIMARIES)
        else:
            client.flushdb()
    finally:
        client.close()


def broker_app(broker_url: str) -> Celery:
    """worker.celeryconfig with another broker: queues, route priorities and publisher
    confirms follow that broker, exactly as celeryconfig derives them."""
    app = Celery("booking-worker", set_as_current=False)
    app.config_from_object("worker.celeryconfig")
    default = priorities(broker_url).default
    routes = {name: {**route, "priority": default} for name, route in app.conf.task_routes.items()}
    options = dict(app.conf.broker_transport_options)
    if is_amqp(broker_url):
        options["confirm_publish"] = True
    app.conf.update(
        broker_url=broker_url,
        task_queues=task_queues(broker_url),
        task_default_priority=default,
        task_routes=routes,
        broker_transport_options=options,
    )
    return app


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose server is missing, except in CI (CI=true), where .ci/run starts
    every server the tests need: there a missing one is a failure, not a silent skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)
