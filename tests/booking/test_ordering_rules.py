"""The pure transitions behind exactly-once ordering (worker.booking.ordering)."""

from __future__ import annotations

from datetime import timedelta

from tests.factories import booking_in
from worker.booking.ordering import (
    after_reconcile,
    claim,
    listing_backoff,
    mark,
    mark_refused,
    record_orders,
    resolve_refusal,
)
from worker.booking.record import Booking, PlacedOrder, utcnow
from worker.booking.states import State

LEASE = timedelta(seconds=30)


def paid_booking(holds: int = 2) -> Booking:
    return booking_in(State.PAID, holds=holds)


def order_for(n: int) -> PlacedOrder:
    return PlacedOrder(
        id=f"o{n}", iri=f"/v1/booking/orders/o{n}", reservation=f"/v1/booking/reservations/r{n}"
    )


def claimed(booking: Booking) -> Booking:
    change = claim(booking, "task-1", utcnow(), LEASE, None)
    assert change is not None
    return change.booking


def test_only_one_claim_wins_and_a_sent_call_cannot_be_claimed_again() -> None:
    booking = claimed(paid_booking())
    assert booking.state == State.ORDERING and booking.order_attempt is not None
    assert booking.order_attempt.sent and booking.order_attempt.number == 1
    assert claim(booking, "task-2", utcnow(), LEASE, 1) is None  # sent: reconcile first


def test_a_call_proven_unsent_may_be_claimed_again_by_the_task_that_saw_it() -> None:
    booking = mark(claimed(paid_booking()), 1, uncertain=False, reason="429").booking  # type: ignore[union-attr]
    assert claim(booking, "task-2", utcnow(), LEASE, 0) is None  # saw another attempt
    again = claim(booking, "task-2", utcnow(), LEASE, 1)
    assert again is not None and again.booking.order_attempt.number == 2  # type: ignore[union-attr]


def test_failed_orders_decide_nothing_before_the_listing_is_read() -> None:
    booking = claimed(paid_booking())
    partial = record_orders(booking, [order_for(0)], [])
    assert partial is not None and partial.note and partial.booking.state == State.ORDERING
    failed = record_orders(partial.booking, [], [{"reservation": "r1", "code": "x"}])
    assert failed is not None and failed.note and failed.booking.state == State.ORDERING
    assert [o.id for o in failed.booking.orders] == ["o0"]  # the order made is kept
    assert failed.booking.failed_orders == [{"reservation": "r1", "code": "x"}]


def test_a_refusal_the_listing_resolves_confirms_the_booking() -> None:
    now = utcnow()
    refused = mark_refused(claimed(paid_booking()), 1, now, "422").booking  # type: ignore[union-attr]
    assert refused.state == State.ORDER_UNCERTAIN and refused.order_unresolved_since == now
    found = resolve_refusal(refused, [order_for(0), order_for(1)], expired=False, now=now)
    assert found is not None and found.booking.state == State.ORDERED
    assert found.booking.order_unresolved_since is None


def test_only_documented_expiry_with_no_order_listed_requires_a_refund() -> None:
    now = utcnow()
    refused = mark_refused(claimed(paid_booking(1)), 1, now, "422").booking  # type: ignore[union-attr]
    expired = resolve_refusal(refused.model_copy(deep=True), [], expired=True, now=now)
    assert expired is not None and expired.booking.state == State.REFUND_REQUIRED
    assert "expired" in (expired.booking.reason or "")

    other = resolve_refusal(refused.model_copy(deep=True), [], expired=False, now=now)
    assert other is None and refused.state == State.ORDER_UNCERTAIN  # waits for the listing


def test_a_refused_attempt_never_reopens_ordering_however_the_listing_reads() -> None:
    refused = mark_refused(claimed(paid_booking()), 1, utcnow(), "422").booking  # type: ignore[union-attr]
    partial = after_reconcile(refused.model_copy(deep=True), [order_for(0)], number=1)
    assert partial is not None and partial.note
    assert partial.booking.state == State.ORDER_UNCERTAIN  # no new call is allowed
    assert after_reconcile(refused.model_copy(deep=True), [], number=1) is None
    done = after_reconcile(refused, [order_for(0), order_for(1)], number=1)
    assert done is not None and done.booking.state == State.ORDERED


def test_listing_backoff_grows_and_stays_inside_the_window() -> None:
    assert listing_backoff(0, 60, 1800) == 2.0
    assert listing_backoff(40, 60, 1800) == 20.0
    assert listing_backoff(1000, 60, 1800) == 60.0
    assert listing_backoff(1790, 60, 10) == 10.5


def test_reconciliation_records_found_orders_and_allows_a_call_only_for_the_rest() -> None:
    uncertain = mark(claimed(paid_booking()), 1, uncertain=True, reason="timeout").booking  # type: ignore[union-attr]
    assert uncertain.state == State.ORDER_UNCERTAIN
    stale = after_reconcile(uncertain.model_copy(deep=True), [order_for(0)], number=7)
    assert stale is not None and stale.note and stale.booking.state == State.ORDER_UNCERTAIN
    assert [o.id for o in stale.booking.orders] == ["o0"]  # found orders kept all the same

    change = after_reconcile(uncertain.model_copy(deep=True), [order_for(0)], number=1)
    assert change is not None and change.booking.state == State.ORDERING
    assert change.booking.order_attempt is not None and not change.booking.order_attempt.sent

    complete = after_reconcile(uncertain.model_copy(deep=True), [order_for(0), order_for(1)], 1)
    assert complete is not None and complete.booking.state == State.ORDERED


def test_stale_reconciliation_does_not_reopen_ordering() -> None:
    uncertain = mark(claimed(paid_booking()), 1, uncertain=True, reason="timeout").booking  # type: ignore[union-attr]
    assert after_reconcile(uncertain, [], number=0) is None  # another attempt since
