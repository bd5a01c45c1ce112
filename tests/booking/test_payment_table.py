"""Each cell of the payment rules table (worker.booking.payment's docstring): an event
(succeeded, failed, canceled, merchant cancel) against a booking in each state, through
the real store and BookingService, on the real Redis."""

from __future__ import annotations

import itertools
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


@pytest.fixture
def parts(redis_client: redis.Redis) -> tuple[BookingStore, BookingService]:
    store = BookingStore(redis_client, retention_seconds=600)
    enqueue = RecordingEnqueuer()
    return store, BookingService(store, enqueue, event_ttl_seconds=60, policy="all_or_nothing")


def put(store: BookingStore, booking: Booking) -> Booking:
    assert store.create(booking, reason="fixture")
    return booking


def event(booking: Booking, kind: str) -> PaymentEvent:
    n = next(_ids)
    return PaymentEvent(provider="test", event_id=f"evt{n}", kind=kind,  # type: ignore[arg-type]
                        booking_id=booking.id, payment_id=f"pi{n}", amount_minor=4000,
                        currency="eur")


def last_reason(store: BookingStore, booking_id: str) -> str:
    return str(store.timeline(booking_id)[-1]["reason"])


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
def test_succeeded(parts: tuple[BookingStore, BookingService], state: State,
                   shape: dict[str, Any], expected: State, effect: str) -> None:
    store, _ = parts
    booking = put(store, make(state, **shape))
    result = store.update(booking.id, lambda b: apply_payment(b, _payment(), utcnow()))
    after = result.booking
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


def test_succeeded_with_another_amount_requires_a_refund(
    parts: tuple[BookingStore, BookingService],
) -> None:
    store, _ = parts
    booking = put(store, make(S.AWAITING_PAYMENT))
    result = store.update(booking.id, lambda b: apply_payment(b, _payment(amount=3999), utcnow()))
    assert result.booking is not None and result.booking.state == S.REFUND_REQUIRED


# -- failed: a note in every state ---------------------------------------------------
@pytest.mark.parametrize("state", list(State))
def test_failed_attempt_is_only_a_note(parts: tuple[BookingStore, BookingService],
                                       state: State) -> None:
    store, service = parts
    booking = put(store, make(state))
    assert service.record_payment(event(booking, "failed")) == "noted"
    after = store.load(booking.id)
    assert after is not None and after.state == state
    assert last_reason(store, booking.id).startswith("payment attempt failed")
    assert service.enqueue.calls == []  # type: ignore[attr-defined]


# -- canceled (provider) -------------------------------------------------------------
CANCELLABLE_CASES = [S.RECEIVED, S.RESERVING, S.AWAITING_PAYMENT]
NOTE_ONLY = [*PAID_LIKE, S.EXPIRED, S.RESERVATION_FAILED, S.REFUND_REQUIRED]


@pytest.mark.parametrize("state", CANCELLABLE_CASES)
def test_canceled_cancels_before_any_success(parts: tuple[BookingStore, BookingService],
                                             state: State) -> None:
    store, service = parts
    booking = put(store, make(state))
    assert service.record_payment(event(booking, "canceled")) == "cancelled"
    after = store.load(booking.id)
    assert after is not None and after.state == S.CANCELLED


@pytest.mark.parametrize("state", CANCELLABLE_CASES)
def test_canceled_after_a_received_success_is_a_note(
    parts: tuple[BookingStore, BookingService], state: State
) -> None:
    store, service = parts
    booking = put(store, make(state))
    assert service.record_payment(event(booking, "succeeded")) == "enqueued"  # not applied
    assert service.record_payment(event(booking, "canceled")) == "ignored"
    after = store.load(booking.id)
    assert after is not None and after.state == state
    assert "ignored: a payment succeeded" in last_reason(store, booking.id)


def test_canceled_with_money_recorded_before_the_hold_is_a_note(
    parts: tuple[BookingStore, BookingService],
) -> None:
    store, service = parts
    booking = put(store, make(S.RESERVING))
    store.update(booking.id, lambda b: apply_payment(b, _payment(), utcnow()))
    assert service.record_payment(event(booking, "canceled")) == "ignored"
    after = store.load(booking.id)
    assert after is not None and after.state == S.RESERVING


@pytest.mark.parametrize("state", NOTE_ONLY)
def test_canceled_after_payment_or_close_is_a_note(
    parts: tuple[BookingStore, BookingService], state: State
) -> None:
    store, service = parts
    booking = put(store, make(state))
    assert service.record_payment(event(booking, "canceled")) == "ignored"
    after = store.load(booking.id)
    assert after is not None and after.state == state
    assert "payment cancelled" in last_reason(store, booking.id)


def test_canceled_twice_changes_nothing_the_second_time(
    parts: tuple[BookingStore, BookingService],
) -> None:
    store, service = parts
    booking = put(store, make(S.CANCELLED))
    assert service.record_payment(event(booking, "canceled")) == "cancelled"
    assert len(store.timeline(booking.id)) == 1


# -- merchant cancel -------------------------------------------------------------------
@pytest.mark.parametrize("state", CANCELLABLE_CASES)
def test_merchant_cancel_before_any_success(parts: tuple[BookingStore, BookingService],
                                            state: State) -> None:
    store, service = parts
    booking = put(store, make(state))
    assert service.cancel(booking.id).state == S.CANCELLED


@pytest.mark.parametrize("state", CANCELLABLE_CASES)
def test_merchant_cancel_after_a_received_success_is_refused(
    parts: tuple[BookingStore, BookingService], state: State
) -> None:
    store, service = parts
    booking = put(store, make(state))
    service.record_payment(event(booking, "succeeded"))
    with pytest.raises(BookingConflictError, match="it is paid"):
        service.cancel(booking.id)
    after = store.load(booking.id)
    assert after is not None and after.state == state


@pytest.mark.parametrize("state", NOTE_ONLY)
def test_merchant_cancel_after_payment_or_close_is_refused(
    parts: tuple[BookingStore, BookingService], state: State
) -> None:
    store, service = parts
    booking = put(store, make(state))
    with pytest.raises(BookingConflictError):
        service.cancel(booking.id)
    after = store.load(booking.id)
    assert after is not None and after.state == state


def test_merchant_cancel_of_a_cancelled_booking_returns_it(
    parts: tuple[BookingStore, BookingService],
) -> None:
    store, service = parts
    booking = put(store, make(S.CANCELLED))
    assert service.cancel(booking.id).state == S.CANCELLED


def test_succeeded_after_cancel_with_another_amount_requires_a_refund_without_a_new_hold(
    parts: tuple[BookingStore, BookingService],
) -> None:
    store, _ = parts
    booking = put(store, make(S.CANCELLED))
    result = store.update(booking.id, lambda b: apply_payment(b, _payment(amount=3999), utcnow()))
    assert result.booking is not None and result.booking.state == S.REFUND_REQUIRED
    assert not result.booking.rescue and result.booking.released_reservations == []
