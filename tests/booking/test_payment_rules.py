"""Money is never stranded: payments against lapsed holds and racing cancels."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis

from tests.factories import HOLD_TOTAL, RecordingEnqueuer, booking_in
from tests.ops.support import make_context, ops_settings
from worker.booking import service as service_module
from worker.booking import sweep as sweep_module
from worker.booking.payment import apply_payment, cancel_event
from worker.booking.payment import cancel as cancel_transition
from worker.booking.record import Booking, Payment, utcnow
from worker.booking.requests import PaymentEvent
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


def arriving_first(transition: Callable[..., Any], arrive: Callable[[], object]) -> Any:
    """`transition`, but the first call first lets `arrive` happen: a successful payment
    recorded after the caller decided to cancel and before its compare-and-set."""
    arrived = threading.Event()

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not arrived.is_set():
            arrived.set()
            arrive()
        return transition(*args, **kwargs)

    return wrapped


def success_for(held: Booking, event_id: str = "evt_ok") -> PaymentEvent:
    return PaymentEvent(provider="test", event_id=event_id, kind="succeeded",
                        booking_id=held.id, payment_id="pi_ok", amount_minor=4000,
                        currency="eur")


@pytest.mark.parametrize("path", ["merchant cancel", "provider canceled event"])
def test_a_success_recorded_while_a_cancel_is_decided_prevents_the_cancel(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    store = BookingStore(redis_client, retention_seconds=600)
    service = BookingService(store, RecordingEnqueuer(), event_ttl_seconds=60,
                             policy="all_or_nothing")
    held = booking(State.AWAITING_PAYMENT)
    store.create(held, reason="created")
    webhook = BookingService(BookingStore(redis_client, retention_seconds=600),
                             RecordingEnqueuer(), event_ttl_seconds=60, policy="all_or_nothing")

    def arrive() -> None:
        assert webhook.record_payment(success_for(held)) == "enqueued"

    if path == "merchant cancel":
        monkeypatch.setattr(service_module, "cancel_transition",
                            arriving_first(cancel_transition, arrive))
        with pytest.raises(BookingConflictError, match="paid"):
            service.cancel(held.id)
    else:
        monkeypatch.setattr(service_module, "cancel_event", arriving_first(cancel_event, arrive))
        cancelled = PaymentEvent(provider="test", event_id="evt_cx", kind="canceled",
                                 booking_id=held.id, payment_id="pi_cx")
        assert service.record_payment(cancelled) == "ignored"

    assert service.get(held.id).state == State.AWAITING_PAYMENT
    assert store.pending_payment_events([held.id]) == {held.id: ["test:evt_ok"]}
    assert "cancelled" not in [entry["to"] for entry in store.timeline(held.id)]


def test_a_success_recorded_while_the_sweeper_closes_a_hold_prevents_the_close(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utcnow()
    enqueue = RecordingEnqueuer()
    ctx = make_context(redis_client, ops_settings("redis://unused"), enqueue, now)
    held = booking(State.AWAITING_PAYMENT, expires_in=30)  # inside the cancel margin
    ctx.store.create(held, reason="created")
    # Its message lost, the event makes the booking due at once (no redrive delay).
    webhook = BookingService(BookingStore(redis_client, retention_seconds=600),
                             RecordingEnqueuer(), event_ttl_seconds=60, policy="all_or_nothing",
                             redrive_after_seconds=0)

    def arrive() -> None:
        assert webhook.record_payment(success_for(held)) == "enqueued"

    close = arriving_first(sweep_module._close_hold, arrive)
    monkeypatch.setattr(sweep_module, "_close_hold", close)
    assert sweep_module.sweep(ctx)["payment_waiting"] == 1
    assert ctx.store.load(held.id).state == State.AWAITING_PAYMENT  # type: ignore[union-attr]
    assert enqueue.calls == []

    # The next sweep applies the payment first: the hold is paid, never cancelled.
    monkeypatch.setattr(ctx, "clock", lambda: now + timedelta(seconds=5))
    sweep_module.sweep(ctx)
    assert ctx.store.load(held.id).state == State.PAID  # type: ignore[union-attr]
