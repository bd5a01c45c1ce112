"""Money is never stranded: payments against lapsed holds and racing cancels."""

from __future__ import annotations

import pytest
import redis

from tests.factories import HOLD_TOTAL, RecordingEnqueuer, booking_in
from worker.booking.payment import apply_payment
from worker.booking.record import Booking, Payment, utcnow
from worker.booking.service import BookingConflictError, BookingService
from worker.booking.states import State
from worker.booking.store import BookingStore


def payment(amount: int = 4000) -> Payment:
    return Payment(
        provider="test",
        event_id="evt",
        payment_id="pi_1",
        amount_minor=amount,
        currency="eur",
        received_at=utcnow(),
    )


def booking(state: State, *, expires_in: float = 600) -> Booking:
    return booking_in(state, expires_in=expires_in, total_incl_tax=HOLD_TOTAL)


def test_payment_for_a_lapsed_hold_not_yet_swept_starts_a_rescue(
    redis_client: redis.Redis,
) -> None:
    store = BookingStore(redis_client, retention_seconds=600)
    lapsed = booking(State.AWAITING_PAYMENT, expires_in=-5)
    store.create(lapsed, reason="created")

    result = store.update(lapsed.id, lambda b: apply_payment(b, payment(), utcnow()))

    assert result.changed and result.booking is not None
    assert result.booking.state == State.RESERVING and result.booking.rescue
    assert result.booking.pending_payment is not None


def test_a_booking_with_money_pending_cannot_be_cancelled(redis_client: redis.Redis) -> None:
    store = BookingStore(redis_client, retention_seconds=600)
    service = BookingService(
        store, RecordingEnqueuer(), event_ttl_seconds=60, policy="all_or_nothing"
    )
    reserving = booking(State.RESERVING)
    store.create(reserving, reason="created")
    store.update(reserving.id, lambda b: apply_payment(b, payment(), utcnow()))

    with pytest.raises(BookingConflictError, match="paid"):
        service.cancel(reserving.id)
    assert service.get(reserving.id).pending_payment is not None
