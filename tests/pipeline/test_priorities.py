"""The sweeper's urgent order call overtakes a backlog on either broker, although the two
number priorities in opposite directions (worker/queues.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.backends import broker_app, unavailable
from tests.support.rabbitmq import rabbitmq_available, rabbitmq_vhost
from worker.enqueue import CeleryEnqueuer
from worker.queues import AMQP_MAX_PRIORITY, priorities


@contextlib.contextmanager
def broker(kind: str, redis_url: str) -> Iterator[str]:
    if kind == "redis":
        yield redis_url
        return
    if not rabbitmq_available():
        unavailable("no RabbitMQ on 127.0.0.1:5672 (or no rabbitmqctl)")
    with rabbitmq_vhost("bw-priority") as url:
        yield url


def test_priority_numbers_follow_each_brokers_direction() -> None:
    redis_side = priorities("redis://127.0.0.1:6379/0")
    amqp_side = priorities("amqp://guest:guest@127.0.0.1:5672/x")

    assert redis_side.urgent < redis_side.default  # kombu's Redis lists: 0 first
    assert amqp_side.urgent > amqp_side.default  # RabbitMQ: highest first
    assert amqp_side.urgent == AMQP_MAX_PRIORITY  # not clipped by x-max-priority


@pytest.mark.parametrize("kind", ["redis", "rabbitmq"])
def test_urgent_create_order_is_delivered_before_a_backlog(
    kind: str, redis_client: redis.Redis, redis_url: str
) -> None:
    with broker(kind, redis_url) as url:
        app = broker_app(url)
        enqueue = CeleryEnqueuer(app)
        backlog = [f"bk_ordinary_{n}" for n in range(5)]
        for booking_id in backlog:
            enqueue.create_order(booking_id)
        enqueue.create_order("bk_urgent", urgent=True)
        enqueue.create_order("bk_after")

        delivered: list[str] = []
        with app.connection_for_read() as connection:
            queue = app.amqp.queues["payments"].bind(connection.default_channel)
            deadline = time.monotonic() + 20
            while len(delivered) < 7 and time.monotonic() < deadline:
                message = queue.get(no_ack=True)
                if message is None:
                    time.sleep(0.05)
                    continue
                delivered.append(message.headers["argsrepr"].strip("[]'"))
        app.close()

    assert delivered == ["bk_urgent", *backlog, "bk_after"]
