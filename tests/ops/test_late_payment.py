"""Money after cancellation, through a real worker and the sandbox.

A payment for a cancelled booking whose hold is still live orders that hold (issue 9: the
rescue used to release a live hold and reserve again); a wrong amount ends in
refund_required with an alert and the merchant's booking.refund_required callback. A
payment for a lapsed hold reserves the same items once more (tests/booking/
test_payment_table.py covers each case).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from tests.support.booking import CUSTOMER, orders_for, pay, request_for, wait_for
from tests.support.deployment import WORKER_SETTINGS
from tests.support.receiver import HttpRecorder
from tests.support.waits import wait_until
from worker.booking.record import Booking
from worker.booking.service import BookingService
from worker.booking.states import State

FINAL = (State.COMPLETED, State.REFUND_REQUIRED)


@pytest.fixture(scope="module")
def worker_settings(receiver: HttpRecorder) -> dict[str, str]:
    return {
        **WORKER_SETTINGS,
        "CALLBACK_URL": receiver.url,
        "SENTRY_DSN": receiver.sentry_dsn,
        "SENTRY_ENVIRONMENT": "ops-test",
    }


def cancelled_hold(service: BookingService, catalog: dict[str, Any], ref: str) -> Booking:
    started = service.start_booking(request_for(catalog, "Day Pass", external_reference=ref))
    held = wait_for(service, started.booking.id, State.AWAITING_PAYMENT, timeout=20)
    assert service.cancel(held.id).state == State.CANCELLED
    return held


def test_payment_after_cancel_orders_the_hold_still_live(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    held = cancelled_hold(service, catalog, "LATE-1")

    assert pay(service, held) == "enqueued"
    done = wait_for(service, held.id, *FINAL, timeout=40)

    assert done.state == State.COMPLETED, service.timeline(held.id)
    assert not done.rescue and done.released_reservations == []
    orders = orders_for(admin, held.id)
    assert len(orders) == 1
    assert orders[0]["reservation"] == held.reservations[0].iri  # the same hold, no second
    reasons = [entry["reason"] for entry in service.timeline(held.id)]
    assert any("hold still live: ordering it" in reason for reason in reasons), reasons
    assert [e["to"] for e in service.timeline(held.id)].count("reserving") == 1


def test_a_wrong_amount_after_cancel_ends_in_refund_required_with_alert_and_callback(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any],
    receiver: HttpRecorder,
) -> None:
    held = cancelled_hold(service, catalog, "LATE-2")
    assert held.total_minor is not None

    pay(service, held, amount_minor=held.total_minor - 100)
    done = wait_for(service, held.id, *FINAL, timeout=40)

    assert done.state == State.REFUND_REQUIRED, service.timeline(held.id)
    assert done.reason is not None and "differs from the reservation total" in done.reason
    assert orders_for(admin, held.id) == []

    def refund_callback() -> list[dict[str, Any]]:
        return [c for c in receiver.callbacks(held.id) if c["type"] == "booking.refund_required"]

    callback = wait_until(refund_callback, 15, "the booking.refund_required callback")[0]
    assert callback["data"]["payment"]["amount"] == held.total_minor - 100

    def alert_event() -> list[dict[str, Any]]:
        return [e for e in receiver.events()
                if e.get("fingerprint") == ["booking-alert", "refund_required", held.id]]

    event = wait_until(alert_event, 15, "the refund_required alert in Sentry")[0]
    assert event["tags"]["booking_id"] == held.id
    assert event["environment"] == "ops-test"
    raw = json.dumps(event)
    for value in CUSTOMER.values():
        assert value not in raw
