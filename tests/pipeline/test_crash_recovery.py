"""A worker SIGKILLed in the middle of each step, with the Procfile's processes and the
default settings: every booking completes within 60 s of the kill, and no Korus call is
repeated blindly (issue 9, finding 4).

The fleet is the Procfile's: a `worker` process (bookings, documents, callbacks,
maintenance), a `payments` process and a beat, with no timing setting overridden. The
killed process is restarted at once, as a supervisor would; its unacknowledged message
comes back only after the broker's visibility timeout (300 s), so the recovery measured
here is the sweeper's: the step's claim lapses with its worker's liveness key and the
booking is driven again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from korus_sandbox.admin import SandboxAdmin
from tests.support.booking import orders_for, pay, request_for, wait_for
from tests.support.receiver import HttpRecorder, recorder
from worker.booking import keys
from worker.booking.service import BookingService
from worker.booking.states import State
from worker.processes import Proc, beat_proc, worker_proc

RESERVE = "POST /v1/booking/reservations/_bulk"
ORDERS = "POST /v1/booking/orders/_bulk"
DOCUMENTS = "GET /v1/booking/orders/{o}/documents"
RECOVERY_SECONDS = 60


@dataclass
class Fleet:
    env: dict[str, str]
    logs: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    restarts: int = 0

    def start(self, name: str) -> Proc:
        self.restarts += 1
        log = self.logs / f"{name}-{self.restarts}.log"
        if name == "worker":
            proc = worker_proc(self.env, name="worker", concurrency=2, log=log,
                               queues="bookings,documents,callbacks,maintenance")
        elif name == "payments":
            proc = worker_proc(self.env, name="payments", concurrency=2, log=log,
                               queues="payments")
        else:
            proc = beat_proc(self.env, log=log)
        self.procs[name] = proc.start()
        return proc

    def kill_and_restart(self, name: str) -> None:
        proc = self.procs[name]
        proc.kill()  # SIGKILL to the process group: the pool's children die too
        assert proc.process is not None
        proc.process.wait(10)
        self.start(name)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture(scope="module")
def worker_settings() -> dict[str, str]:
    return {}  # the defaults: nothing shortened


@pytest.fixture(scope="module")
def merchant() -> Iterator[HttpRecorder]:
    with recorder() as running:
        yield running


@pytest.fixture(scope="module")
def fleet(deployment_env: dict[str, str], merchant: HttpRecorder,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    # The merchant is a loopback receiver over plain HTTP: exempt it from the SSRF rules.
    env = {
        **deployment_env,
        "CALLBACK_ALLOW_HTTP": "true",
        "CALLBACK_ALLOWED_NETWORKS": "127.0.0.0/8",
    }
    running = Fleet(env, Path(tmp_path_factory.mktemp("fleet")))
    for name in ("worker", "payments", "beat"):
        running.start(name)
    yield running
    running.stop()


@pytest.fixture
def service(redis_url: str, fleet: Fleet, admin: SandboxAdmin) -> Iterator[BookingService]:
    from worker.app import app
    from worker.booking.deadlines import DeadlinePolicy
    from worker.booking.store import BookingStore
    from worker.enqueue import CeleryEnqueuer

    admin.reset()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = BookingStore(client, retention_seconds=3600, deadline_policy=DeadlinePolicy())
    yield BookingService(store, CeleryEnqueuer(app), event_ttl_seconds=3600,
                         policy="all_or_nothing")
    admin.clear_faults()
    client.close()


def poll(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start(service: BookingService, catalog: dict[str, Any], merchant: HttpRecorder,
          count: int = 2) -> list[str]:
    request = request_for(catalog, "Day Pass", callbackUrl=merchant.url + "/hooks")
    return [service.start_booking(request).booking.id for _ in range(count)]


def paid_all(service: BookingService, ids: list[str]) -> None:
    for booking_id in ids:
        pay(service, wait_for(service, booking_id, State.AWAITING_PAYMENT, timeout=60))


def completed_within(service: BookingService, ids: list[str], killed_at: float) -> float:
    for booking_id in ids:
        wait_for(service, booking_id, State.COMPLETED, timeout=RECOVERY_SECONDS + 60)
    return time.monotonic() - killed_at


def test_killed_in_the_middle_of_reserve(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any], fleet: Fleet,
    merchant: HttpRecorder,
) -> None:
    admin.set_fault(RESERVE, latency_ms=4000)
    ids = start(service, catalog, merchant)
    poll(lambda: all((b := service.get(i)).state == State.RESERVING and b.claim for i in ids),
         20, "both reserve calls in flight")
    fleet.kill_and_restart("worker")
    killed_at = time.monotonic()
    admin.clear_faults()

    paid_all(service, ids)
    took = completed_within(service, ids, killed_at)

    assert took <= RECOVERY_SECONDS, took
    for booking_id in ids:
        reasons = [e["reason"] for e in service.timeline(booking_id)]
        # Korus cannot find a hold by our reference: the call is made again only after
        # the claim lapsed with its worker, and the timeline says so.
        assert any("reserve claim 1 lapsed" in r for r in reasons), reasons
        assert len(orders_for(admin, booking_id)) == 1


def test_killed_in_the_middle_of_create_order(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any], fleet: Fleet,
    merchant: HttpRecorder,
) -> None:
    ids = start(service, catalog, merchant)
    for booking_id in ids:
        wait_for(service, booking_id, State.AWAITING_PAYMENT, timeout=60)
    admin.set_fault(ORDERS, latency_ms=4000)
    paid_all(service, ids)
    poll(lambda: all(service.get(i).state == State.ORDERING for i in ids), 30,
         "both order calls in flight")
    fleet.kill_and_restart("payments")
    killed_at = time.monotonic()
    time.sleep(4.5)  # the sandbox commits the orders; nobody hears the answers
    admin.clear_faults()

    took = completed_within(service, ids, killed_at)

    assert took <= RECOVERY_SECONDS, took
    assert admin.calls()[ORDERS] == len(ids)  # never sent again: reconciled instead
    for booking_id in ids:
        assert len(orders_for(admin, booking_id)) == 1
        reasons = [e["reason"] for e in service.timeline(booking_id)]
        assert any(r.startswith("reconciled") for r in reasons), reasons


def test_killed_in_the_middle_of_fetch_documents(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any], fleet: Fleet,
    merchant: HttpRecorder,
) -> None:
    admin.set_fault(DOCUMENTS, latency_ms=4000)
    ids = start(service, catalog, merchant)
    paid_all(service, ids)
    poll(lambda: all(
        (b := service.get(i)).state == State.FETCHING_DOCUMENTS and b.claim for i in ids
    ), 40, "both document listings in flight")
    fleet.kill_and_restart("worker")
    killed_at = time.monotonic()
    admin.clear_faults()

    took = completed_within(service, ids, killed_at)

    assert took <= RECOVERY_SECONDS, took
    for booking_id in ids:
        assert len(orders_for(admin, booking_id)) == 1


def test_killed_in_the_middle_of_a_merchant_callback(
    redis_url: str, service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any],
    fleet: Fleet, merchant: HttpRecorder,
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    hung: set[str] = set()

    def first_reserved_hangs(n: int) -> float:
        request = merchant.requests[n]
        msg_id = request.headers.get("webhook-id", "")
        if request.path == "/slow" and "booking.reserved" in msg_id and msg_id not in hung:
            hung.add(msg_id)
            return 4.0
        return 0.0

    merchant.delay_for = first_reserved_hangs
    request = request_for(catalog, "Day Pass", callbackUrl=merchant.url + "/slow")
    ids = [service.start_booking(request).booking.id for _ in range(2)]

    def sending() -> bool:
        raws = [client.hget(keys.callbacks(i), "booking.reserved") or "" for i in ids]
        return all('"sending"' in raw for raw in raws)

    poll(sending, 40, "both booking.reserved callbacks in flight")
    fleet.kill_and_restart("worker")
    killed_at = time.monotonic()

    def delivered() -> bool:
        raws = [client.hget(keys.callbacks(i), "booking.reserved") or "" for i in ids]
        return all('"delivered"' in raw for raw in raws)

    poll(delivered, RECOVERY_SECONDS + 60, "callbacks delivered after the kill")
    took = time.monotonic() - killed_at
    merchant.delay_for = lambda n: 0.0
    client.close()

    assert took <= RECOVERY_SECONDS, took
    paid_all(service, ids)
    completed_within(service, ids, time.monotonic())


def test_an_order_endpoint_failing_for_60_seconds_then_recovering_completes_the_booking(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any], fleet: Fleet,
    merchant: HttpRecorder,
) -> None:
    """Finding 1: with every retry policy stopping after Celery's default of 3 retries,
    this booking stayed `order_uncertain` for good (4 POSTs in about 11 s), no alert."""
    (booking_id,) = start(service, catalog, merchant, count=1)
    wait_for(service, booking_id, State.AWAITING_PAYMENT, timeout=60)
    admin.set_fault(ORDERS, error_rate=1.0)
    outage_began = time.monotonic()
    paid_all(service, [booking_id])
    time.sleep(max(0.0, 60 - (time.monotonic() - outage_began)))
    failed_calls = admin.calls()[ORDERS]
    admin.clear_faults()

    done = wait_for(service, booking_id, State.COMPLETED, State.REFUND_REQUIRED, timeout=240)

    assert done.state == State.COMPLETED, service.timeline(booking_id)
    assert failed_calls > 4  # retried past Celery's default budget
    assert len(orders_for(admin, booking_id)) == 1
    reasons = [e["reason"] for e in service.timeline(booking_id)]
    assert any("retry in" in r for r in reasons), reasons
