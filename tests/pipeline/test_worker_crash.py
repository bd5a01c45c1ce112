"""A worker killed (SIGKILL) in the middle of create_order loses nothing and orders once,
on each fleet (on RabbitMQ the broker requeues the message as soon as the connection
drops; on Redis it comes back after the visibility timeout)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from tests.support.backends import Backends
from tests.support.booking import orders_for, pay, request_for, wait_for
from tests.support.deployment import WORKER_SETTINGS
from worker.booking.service import BookingService
from worker.booking.states import State
from worker.processes import Proc, worker_proc


@pytest.fixture(scope="module")
def backends(fleet_backends: Backends) -> Backends:
    """Every test here runs on each fleet of tests/pipeline/conftest.py."""
    return fleet_backends


@pytest.fixture(scope="module")
def worker_settings() -> dict[str, str]:
    # The order call (2.5 s of sandbox latency) is still in flight when the worker dies;
    # its unacknowledged message comes back after the (short) visibility timeout.
    return {
        **WORKER_SETTINGS,
        "KORUS_READ_TIMEOUT": "5",
        "VISIBILITY_TIMEOUT_SECONDS": "4",
        "UNACKED_RESTORE_INTERVAL_SECONDS": "1",
    }


@pytest.fixture(scope="module")
def worker(
    deployment_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    log = Path(tmp_path_factory.mktemp("crash")) / "worker.log"
    proc = worker_proc(deployment_env, name="first", concurrency=2, log=log).start()
    yield proc
    proc.stop()


def test_worker_killed_during_create_order_completes_with_one_order_after_restart(
    service: BookingService,
    admin: SandboxAdmin,
    catalog: dict[str, Any],
    worker: Proc,
    deployment_env: dict[str, str],
    tmp_path: Path,
) -> None:
    booking = service.start_booking(request_for(catalog, "Day Pass")).booking
    held = wait_for(service, booking.id, State.AWAITING_PAYMENT)
    admin.set_fault("POST /v1/booking/orders/_bulk", latency_ms=2500)
    pay(service, held)
    wait_for(service, booking.id, State.ORDERING)
    time.sleep(0.5)
    worker.kill()  # SIGKILL to the whole process group, mid-call
    assert worker.process is not None
    worker.process.wait(10)

    time.sleep(3)  # the sandbox commits the order; nobody hears the answer
    assert len(orders_for(admin, booking.id)) == 1
    assert service.get(booking.id).state == State.ORDERING

    restarted = worker_proc(
        deployment_env, name="second", concurrency=2, log=tmp_path / "restarted.log"
    ).start()
    try:
        done = wait_for(service, booking.id, State.COMPLETED, State.REFUND_REQUIRED, timeout=60)
    finally:
        restarted.stop()

    assert done.state == State.COMPLETED, service.timeline(booking.id)
    assert len(orders_for(admin, booking.id)) == 1
    reasons = [e["reason"] for e in service.timeline(booking.id)]
    assert any(r.startswith("reconciled") for r in reasons), reasons
