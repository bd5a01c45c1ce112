"""Each cell of the payment rules table (worker.booking.payment's docstring): an event
(succeeded, failed, canceled, merchant cancel) against a booking in each state, through
the real store and BookingService, on the real Redis."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from tests.factories import RecordingEnqueuer, booking_in
from worker.booking.payment import apply_payment
from worker.booking.record import Booking, Payment, utcnow
from worker.booking.requests import PaymentEvent
from worker.booking.service import BookingConflictError, BookingService
from worker.booking.states import State
from worker.booking.store import BookingStore

_ids = itertools.count()
S = State


def make(state: State, *, hold: str = "live", rescue: bool = False) -> Booking:
    held = state not in (S.RECEIVED, S.RESERVING, S.RESERVATION_FAILED)
    return booking_in(
        state,
        prefix="bk_table",
        holds=1 if held else 0,
        expires_in=600 if hold == "live" else -5,
        rescue=rescue,
        payment=_payment("pi_old") if state in PAID_LIKE else None,
    )


PAID_LIKE = (S.PAID, S.ORDERING, S.ORDER_UNCERTAIN, S.ORDERED, S.FETCHING_DOCUMENTS,
             S.AWAITING_BENEFICIARY, S.DOCUMENTS_PENDING, S.COMPLETED)


def _payment(payment_id: str = "pi_new", amount: int = 4000) -> Payment:
    return Payment(provider="test", event_id=f"evt_{payment_id}", payment_id=payment_id,
                   amount_minor=amount, currency="eur", received_at=utcnow())


@dataclass
class Table:
    """The store and the service of one test, and what a cell needs of them."""

    store: BookingStore
    service: BookingService

    def put(self, state: State, **shape: Any) -> Booking:
        """A booking in `state` (`make`'s shape), written to the store."""
        booking = make(state, **shape)
        assert self.store.create(booking, reason="fixture")
        return booking

    def record(self, booking: Booking, kind: str) -> str:
        """The service's outcome for a payment event of `kind` for `booking`."""
        n = next(_ids)
        return self.service.record_payment(
            PaymentEvent(provider="test", event_id=f"evt{n}", kind=kind,  # type: ignore[arg-type]
                         booking_id=booking.id, payment_id=f"pi{n}", amount_minor=4000,
                         currency="eur")
        )

    def apply(self, booking: Booking, payment: Payment) -> Booking | None:
        """`payment` applied to the stored booking (as the payments worker does)."""
        return self.store.update(booking.id, lambda b: apply_payment(b, payment, utcnow())).booking

    def state_of(self, booking: Booking) -> State:
        stored = self.store.load(booking.id)
        assert stored is not None
        return stored.state

    def last_reason(self, booking: Booking) -> str:
        return str(self.store.timeline(booking.id)[-1]["reason"])


@pytest.fixture
def table(redis_client: redis.Redis) -> Table:
    store = BookingStore(redis_client, retention_seconds=600)
    enqueue = RecordingEnqueuer()
    return Table(
        store, BookingService(store, enqueue, event_ttl_seconds=60, policy="all_or_nothing")
    )


# -- succeeded -----------------------------------------------------------------------
SUCCEEDED: list[tuple[State, dict[str, Any], State, str]] = [
    (S.RECEIVED, {}, S.RECEIVED, "pending"),
    (S.RESERVING, {}, S.RESERVING, "pending"),
    (S.AWAITING_PAYMENT, {}, S.PAID, "paid"),
    (S.AWAITING_PAYMENT, {"hold": "lapsed"}, S.RESERVING, "rescue"),
    *[(state, {}, state, "extra") for state in PAID_LIKE],
    (S.CANCELLED, {}, S.PAID, "paid"),  # hold still live: order it, no second hold
    (S.CANCELLED, {"hold": "lapsed"}, S.RESERVING, "rescue"),
    (S.CANCELLED, {"hold": "lapsed", "rescue": True}, S.REFUND_REQUIRED, "refund"),
    (S.EXPIRED, {"hold": "lapsed"}, S.RESERVING, "rescue"),
    (S.EXPIRED, {"hold": "lapsed", "rescue": True}, S.REFUND_REQUIRED, "refund"),
    (S.RESERVATION_FAILED, {}, S.REFUND_REQUIRED, "refund"),
    (S.REFUND_REQUIRED, {}, S.REFUND_REQUIRED, "extra"),
]


@pytest.mark.parametrize(("state", "shape", "expected", "effect"), SUCCEEDED,
                         ids=[f"{s}-{'-'.join(map(str, k.values())) or 'x'}"
                              for s, k, _, _ in SUCCEEDED])
def test_succeeded(table: Table, state: State, shape: dict[str, Any], expected: State,
                   effect: str) -> None:
    booking = table.put(state, **shape)
    after = table.apply(booking, _payment())
    assert after is not None and after.state == expected
    if effect == "pending":
        assert after.pending_payment is not None
    elif effect == "paid":
        assert after.payment is not None and after.payment.payment_id == "pi_new"
        assert after.reservations == booking.reservations  # the same hold, ordered next
    elif effect == "rescue":
        assert after.rescue and after.pending_payment is not None and not after.reservations
    elif effect == "extra":
        assert [p.payment_id for p in after.extra_payments] == ["pi_new"]
    else:
        assert after.payment is not None


def test_succeeded_with_another_amount_requires_a_refund(table: Table) -> None:
    after = table.apply(table.put(S.AWAITING_PAYMENT), _payment(amount=3999))
    assert after is not None and after.state == S.REFUND_REQUIRED


# -- failed: a note in every state ---------------------------------------------------
@pytest.mark.parametrize("state", list(State))
def test_failed_attempt_is_only_a_note(table: Table, state: State) -> None:
    booking = table.put(state)
    assert table.record(booking, "failed") == "noted"
    assert table.state_of(booking) == state
    assert table.last_reason(booking).startswith("payment attempt failed")
    assert table.service.enqueue.calls == []  # type: ignore[attr-defined]


# -- canceled (provider) -------------------------------------------------------------
CANCELLABLE_CASES = [S.RECEIVED, S.RESERVING, S.AWAITING_PAYMENT]
NOTE_ONLY = [*PAID_LIKE, S.EXPIRED, S.RESERVATION_FAILED, S.REFUND_REQUIRED]


@pytest.mark.parametrize("state", CANCELLABLE_CASES)
def test_canceled_cancels_before_any_success(table: Table, state: State) -> None:
    booking = table.put(state)
    assert table.record(booking, "canceled") == "cancelled"
    assert table.state_of(booking) == S.CANCELLED


@pytest.mark.parametrize("state", CANCELLABLE_CASES)
def test_canceled_after_a_received_success_is_a_note(table: Table, state: State) -> None:
    booking = table.put(state)
    assert table.record(booking, "succeeded") == "enqueued"  # not applied
    assert table.record(booking, "canceled") == "ignored"
    assert table.state_of(booking) == state
    assert "ignored: a payment succeeded" in table.last_reason(booking)


def test_canceled_with_money_recorded_before_the_hold_is_a_note(table: Table) -> None:
    booking = table.put(S.RESERVING)
    table.apply(booking, _payment())
    assert table.record(booking, "canceled") == "ignored"
    assert table.state_of(booking) == S.RESERVING


@pytest.mark.parametrize("state", NOTE_ONLY)
def test_canceled_after_payment_or_close_is_a_note(table: Table, state: State) -> None:
    booking = table.put(state)
    assert table.record(booking, "canceled") == "ignored"
    assert table.state_of(booking) == state
    assert "payment cancelled" in table.last_reason(booking)


def test_canceled_twice_changes_nothing_the_second_time(table: Table) -> None:
    booking = table.put(S.CANCELLED)
    assert table.record(booking, "canceled") == "cancelled"
    assert len(table.store.timeline(booking.id)) == 1


# -- merchant cancel -------------------------------------------------------------------
@pytest.mark.parametrize("state", CANCELLABLE_CASES)
def test_merchant_cancel_before_any_success(table: Table, state: State) -> None:
    booking = table.put(state)
    assert table.service.cancel(booking.id).state == S.CANCELLED


@pytest.mark.parametrize("state", CANCELLABLE_CASES)
def test_merchant_cancel_after_a_received_success_is_refused(table: Table, state: State) -> None:
    booking = table.put(state)
    table.record(booking, "succeeded")
    with pytest.raises(BookingConflictError, match="it is paid"):
        table.service.cancel(booking.id)
    assert table.state_of(booking) == state


@pytest.mark.parametrize("state", NOTE_ONLY)
def test_merchant_cancel_after_payment_or_close_is_refused(table: Table, state: State) -> None:
    booking = table.put(state)
    with pytest.raises(BookingConflictError):
        table.service.cancel(booking.id)
    assert table.state_of(booking) == state


def test_merchant_cancel_of_a_cancelled_booking_returns_it(table: Table) -> None:
    booking = table.put(S.CANCELLED)
    assert table.service.cancel(booking.id).state == S.CANCELLED


def test_succeeded_after_cancel_with_another_amount_requires_a_refund_without_a_new_hold(
    table: Table,
) -> None:
    after = table.apply(table.put(S.CANCELLED), _payment(amount=3999))
    assert after is not None and after.state == S.REFUND_REQUIRED
    assert not after.rescue and after.released_reservations == []
