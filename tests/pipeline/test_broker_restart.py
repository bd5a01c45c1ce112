"""A Redis restart (the broker and the state store) while a worker holds an unacknowledged
message: the worker survives, reconnects, finishes the booking with one order, and goes
on consuming.

Celery 5.7.0 failed this: on the connection loss its consumer closed a connection it had
already collected, the Redis transport's restore of the unacknowledged messages raised
AttributeError, and the worker exited ("Unrecoverable error"), so one Redis restart
stopped the whole fleet (pyproject.toml keeps Celery below 5.7 for it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from korus_sandbox.admin import SandboxAdmin
from tests.support.backends import Backends
from tests.support.booking import orders_for, pay, request_for, wait_for
from tests.support.deployment import WORKER_SETTINGS
from worker.booking.service import BookingService
from worker.booking.states import FINAL, State
from worker.processes import Proc, RedisServer, free_port, worker_proc

ORDER_CALL = "POST /v1/booking/orders/_bulk"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backends(redis_server: RedisServer) -> Backends:
    """A Redis of this module's own (state store and broker), so that it can restart it."""
    return Backends("redis-private", redis_server.url)


@pytest.fixture(scope="module")
def worker_settings() -> dict[str, str]:
    # The order call (2.5 s of sandbox latency) is in flight across the restart.
    return {**WORKER_SETTINGS, "KORUS_READ_TIMEOUT": "5"}


@pytest.fixture(scope="module")
def worker(
    deployment_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    """One worker on the Procfile's pool (threads)."""
    log = Path(tmp_path_factory.mktemp("restart")) / "worker.log"
    proc = worker_proc(
        deployment_env, concurrency=4, extra=("--pool", "threads"), log=log
    ).start()
    yield proc
    proc.stop()


def unacked_messages(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.hlen("unacked"))
    finally:
        client.close()


def test_worker_survives_a_redis_restart_with_a_message_in_hand(
    service: BookingService,
    admin: SandboxAdmin,
    catalog: dict[str, Any],
    worker: Proc,
    redis_server: RedisServer,
) -> None:
    booking = service.start_booking(request_for(catalog, "Day Pass")).booking
    held = wait_for(service, booking.id, State.AWAITING_PAYMENT)
    admin.set_fault(ORDER_CALL, latency_ms=2500)
    pay(service, held)
    wait_for(service, booking.id, State.ORDERING)
    time.sleep(0.3)
    assert unacked_messages(redis_server.url) >= 1  # the worker holds create_order

    redis_server.restart()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and service.get(booking.id).state not in FINAL:
        assert worker.running, f"the worker exited after the restart; see {worker.log_path}"
        time.sleep(0.2)
    done = wait_for(service, booking.id, State.COMPLETED, State.REFUND_REQUIRED, timeout=1)
    assert done.state == State.COMPLETED
    assert len(orders_for(admin, booking.id)) == 1
    assert worker.running

    # Still consuming: a booking started after the restart is reserved by the same worker.
    admin.clear_faults()
    after = service.start_booking(request_for(catalog, "Day Pass")).booking
    wait_for(service, after.id, State.AWAITING_PAYMENT)
    assert worker.running
