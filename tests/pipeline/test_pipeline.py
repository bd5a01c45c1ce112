"""The booking pipeline through a real Celery worker, the sandbox and real Redis, on each
fleet: Redis alone, RabbitMQ as the broker, a Redis Cluster as the store."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.faults import FAULT_KINDS
from tests.support.backends import Backends
from tests.support.booking import orders_by_reservation, orders_for, pay, request_for, wait_for
from worker.booking.service import BookingService
from worker.booking.states import State


@pytest.fixture(scope="module")
def backends(fleet_backends: Backends) -> Backends:
    """Every test here runs on each fleet of tests/pipeline/conftest.py."""
    return fleet_backends


DONE = (State.COMPLETED, State.REFUND_REQUIRED, State.RESERVATION_FAILED)


def book_and_pay(
    service: BookingService, catalog: dict[str, Any], product: str, **extra: Any
) -> Any:
    booking = service.start_booking(request_for(catalog, product, **extra)).booking
    held = wait_for(service, booking.id, State.AWAITING_PAYMENT, *DONE)
    assert held.state == State.AWAITING_PAYMENT, held.reason
    pay(service, held)
    return wait_for(service, booking.id, *DONE, timeout=40)


@pytest.mark.parametrize(
    "product",
    [
        "Day Pass",
        "Timed Museum Entry",
        "Limited Concert",
        "Late Documents Tour",
        "Guided Tour With Form",
        "Park And Show Bundle",
    ],
)
def test_paid_booking_completes_with_one_order_and_documents(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any], product: str
) -> None:
    booking = book_and_pay(service, catalog, product)

    assert booking.state == State.COMPLETED, service.timeline(booking.id)
    orders = orders_for(admin, booking.id)
    assert len(orders) == len(booking.reservations) == 1
    assert booking.orders[0].reference == orders[0]["reference"]
    assert booking.documents and all(d.temporary_url for d in booking.documents)
    assert all(d.url_expires_at is not None for d in booking.documents)


def test_beneficiary_data_is_sent_before_documents(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    beneficiaries = [{"firstname": "Alan", "lastname": "Turing", "dateOfBirth": "1990-06-23"}]
    booking = book_and_pay(service, catalog, "Named Festival Pass", beneficiaries=beneficiaries)

    assert booking.state == State.COMPLETED, service.timeline(booking.id)
    assert booking.beneficiaries_sent == [booking.orders[0].tickets[0].id]
    assert all(d.temporary_url for d in booking.documents)


def test_missing_beneficiary_data_parks_the_booking(
    service: BookingService, catalog: dict[str, Any]
) -> None:
    booking = service.start_booking(request_for(catalog, "Named Festival Pass")).booking
    pay(service, wait_for(service, booking.id, State.AWAITING_PAYMENT))

    parked = wait_for(service, booking.id, State.AWAITING_BENEFICIARY, timeout=40)
    assert len(parked.orders) == 1
    assert "beneficiary" in (parked.reason or "")


def test_failing_subsystem_gives_reservation_failed_with_reasons(
    service: BookingService, catalog: dict[str, Any]
) -> None:
    booking = service.start_booking(request_for(catalog, "Broken Subsystem Ride")).booking

    failed = wait_for(service, booking.id, State.RESERVATION_FAILED)
    assert failed.failed_reservations and failed.reservations == []


def test_twenty_concurrent_deliveries_of_one_payment_give_one_order(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    booking = service.start_booking(request_for(catalog, "Day Pass")).booking
    held = wait_for(service, booking.id, State.AWAITING_PAYMENT)

    # 20 events carrying the same payment at once (distinct event ids pass the webhook
    # dedupe, as Stripe's two event types for one payment do), plus exact duplicates.
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def deliver(n: int) -> None:
        barrier.wait(5)
        outcomes.append(pay(service, held, event_id=f"evt_{n % 10}_{held.id}"))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    done = wait_for(service, booking.id, *DONE, timeout=40)
    assert done.state == State.COMPLETED
    assert set(outcomes) <= {"duplicate", "enqueued", "in_progress"}
    assert outcomes.count("enqueued") == 10
    assert len(orders_for(admin, booking.id)) == 1
    assert admin.calls().get("POST /v1/booking/orders/_bulk") == 1


@pytest.mark.parametrize("fault", FAULT_KINDS)
def test_order_call_faults_still_give_exactly_one_order(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any], fault: str
) -> None:
    admin.set_fault(
        "POST /v1/booking/orders/_bulk", next=[fault, fault], timeout_seconds=2, retry_after=1
    )
    booking = book_and_pay(service, catalog, "Day Pass")

    assert booking.state == State.COMPLETED, service.timeline(booking.id)
    assert len(orders_for(admin, booking.id)) == 1
    assert max(orders_by_reservation(admin).values()) == 1


def test_faults_on_every_endpoint_still_give_one_order_per_paid_booking(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    admin.set_fault(
        "*",
        error_rate=0.1,
        rate_limit_rate=0.05,
        timeout_after_commit_rate=0.05,
        timeout_before_commit_rate=0.05,
        drop_rate=0.05,
        timeout_seconds=2,
        retry_after=1,
    )
    ids = [
        service.start_booking(
            request_for(catalog, "Day Pass", external_reference=f"F-{n}")
        ).booking.id
        for n in range(8)
    ]
    paid = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(paid) < len(ids):
        for booking in service.store.load_many(ids):
            if booking.state == State.AWAITING_PAYMENT and booking.id not in paid:
                pay(service, booking)
                paid.add(booking.id)
            elif booking.state == State.RESERVATION_FAILED:
                paid.add(booking.id)
        time.sleep(0.2)
    finals = [wait_for(service, i, *DONE, timeout=90) for i in ids]

    per_reservation = orders_by_reservation(admin)
    assert per_reservation and max(per_reservation.values()) == 1
    for booking in finals:
        if booking.payment is not None:
            assert booking.state == State.COMPLETED, service.timeline(booking.id)
            assert len(orders_for(admin, booking.id)) == 1


def test_payment_before_the_reservation_lands_is_applied_when_it_does(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    admin.set_fault("POST /v1/booking/reservations/_bulk", latency_ms=800)
    booking = service.start_booking(request_for(catalog, "Day Pass")).booking
    pay(service, booking, amount_minor=4000)

    done = wait_for(service, booking.id, *DONE, timeout=40)
    assert done.state == State.COMPLETED, service.timeline(booking.id)
    reasons = [entry["reason"] for entry in service.timeline(booking.id)]
    assert "payment recorded before the reservation landed" in reasons


def test_amount_mismatch_requires_a_refund_and_orders_nothing(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    booking = service.start_booking(request_for(catalog, "Day Pass")).booking
    held = wait_for(service, booking.id, State.AWAITING_PAYMENT)
    pay(service, held, amount_minor=(held.total_minor or 0) - 1)

    done = wait_for(service, booking.id, *DONE)
    assert done.state == State.REFUND_REQUIRED
    assert "amount" in (done.reason or "")
    assert orders_for(admin, booking.id) == []


def test_hold_lapsing_before_the_order_call_requires_a_refund(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    admin.configure(hold_seconds=2)
    try:
        booking = service.start_booking(request_for(catalog, "Day Pass")).booking
        held = wait_for(service, booking.id, State.AWAITING_PAYMENT)
        # The first order call is refused (429, not processed) and retried after the hold
        # lapsed: Korus answers 422 expired.
        admin.set_fault("POST /v1/booking/orders/_bulk", next=["rate_limit"], retry_after=3)
        pay(service, held)
        done = wait_for(service, booking.id, *DONE, timeout=40)
    finally:
        admin.configure(hold_seconds=900)

    assert done.state == State.REFUND_REQUIRED, service.timeline(booking.id)
    assert "expired" in (done.reason or "")
    assert orders_for(admin, booking.id) == []


def _two_items(catalog: dict[str, Any], **extra: Any) -> Any:
    good = request_for(catalog, "Day Pass").model_dump(by_alias=True, exclude_none=True)
    bad = request_for(catalog, "Broken Subsystem Ride").model_dump(by_alias=True, exclude_none=True)
    body = {**good, "items": good["items"] + bad["items"], **extra}
    return type(request_for(catalog, "Day Pass")).model_validate(body)


def test_all_or_nothing_policy_fails_a_partly_reserved_booking(
    service: BookingService, catalog: dict[str, Any]
) -> None:
    booking = service.start_booking(_two_items(catalog)).booking

    failed = wait_for(service, booking.id, State.RESERVATION_FAILED)
    assert len(failed.failed_reservations) == 1
    assert len(failed.released_reservations) == 1 and failed.reservations == []


def test_partial_policy_keeps_what_was_reserved_and_charges_only_that(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    booking = service.start_booking(_two_items(catalog, reservationPolicy="partial")).booking

    held = wait_for(service, booking.id, State.AWAITING_PAYMENT)
    assert len(held.reservations) == 1 and len(held.failed_reservations) == 1
    assert held.total_minor == 4000
    pay(service, held)
    done = wait_for(service, booking.id, *DONE, timeout=40)
    assert done.state == State.COMPLETED
    assert len(orders_for(admin, booking.id)) == 1


def test_a_lost_order_answer_and_a_lagging_listing_still_give_one_order_and_no_refund(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    # The answer is lost, the listing does not show the order for a while, so the worker
    # calls again and Korus (here the sandbox's own rule) refuses: that refusal must not
    # refund a customer who has tickets. The listing is read again until it shows them.
    admin.configure(orders_listing_lag_seconds=5)
    try:
        admin.set_fault(
            "POST /v1/booking/orders/_bulk", next=["timeout_after_commit"], timeout_seconds=2
        )
        booking = book_and_pay(service, catalog, "Day Pass")
    finally:
        admin.configure(orders_listing_lag_seconds=0)

    assert booking.state == State.COMPLETED, service.timeline(booking.id)
    assert len(orders_for(admin, booking.id)) == 1
    states = [entry["to"] for entry in service.timeline(booking.id)]
    assert "order_uncertain" in states and "refund_required" not in states


def test_documents_missing_from_a_lagging_listing_are_waited_for(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    admin.configure(documents_listing_lag_seconds=4)
    try:
        booking = book_and_pay(service, catalog, "Day Pass")
    finally:
        admin.configure(documents_listing_lag_seconds=0)

    assert booking.state == State.COMPLETED, service.timeline(booking.id)
    assert len(booking.documents) == 1 and booking.documents[0].temporary_url
    reasons = [entry["reason"] for entry in service.timeline(booking.id)]
    assert any("not listed by Korus yet" in (reason or "") for reason in reasons)
