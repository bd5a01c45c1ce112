"""Payment events and what they do to a booking (booking.payment_succeeded, webhooks).

Idempotent by business id: a payment (`payment_id`) is applied once, whatever the number
of events or deliveries that carry it (Stripe sends both `checkout.session.completed`
and `payment_intent.succeeded` for one payment). A received successful event is kept in
the booking's pending set (`keys.payments`) until it is applied; the sweeper applies
what is left before it closes anything, so money is never dropped with a lost message.

The rules (event x state -> effect). "note" is a timeline entry and nothing else; a
"success" is a payment recorded on the booking (`payment`, `pending_payment`) or a
successful event received and not yet applied.

| state / event        | succeeded                         | failed | canceled, merchant cancel |
|-----------------------|-----------------------------------|--------|---------------------------|
| received, reserving   | kept pending; settled when the    | note   | cancelled; with a success: |
|                       | hold lands                        |        | note (merchant: 409)       |
| awaiting_payment      | paid; amount differs:             | note   | cancelled; with a success: |
|                       | refund_required; hold lapsed:     |        | note (merchant: 409)       |
|                       | rescue (reserving)                |        |                            |
| paid .. completed     | note: extra payment, alert        | note   | note (merchant: 409)       |
| cancelled             | hold live: paid (order the hold), | note   | nothing (idempotent)       |
|                       | amount differs: refund_required;  |        |                            |
|                       | lapsed: rescue; rescued before:   |        |                            |
|                       | refund_required                   |        |                            |
| expired               | rescue; rescued before:           | note   | note (merchant: 409)       |
|                       | refund_required                   |        |                            |
| reservation_failed    | refund_required                   | note   | note (merchant: 409)       |
| refund_required       | note: extra payment, alert        | note   | note (merchant: 409)       |

`failed` is `payment_intent.payment_failed`, `checkout.session.async_payment_failed` and
`payment.failed`: the customer may retry the same payment, so it never cancels.
`canceled` is `payment_intent.canceled` and `payment.canceled`. No failure or cancel
event closes a booking with a success.
"""

from __future__ import annotations

from datetime import datetime

from worker.alerts import alert
from worker.booking.context import StepContext
from worker.booking.effects import after_transition
from worker.booking.record import Booking, Payment
from worker.booking.states import CANCELLABLE, FINAL, PAID_STATES, State
from worker.booking.store import Change, UpdateResult


def _known(booking: Booking, payment: Payment) -> bool:
    seen = [booking.payment, booking.pending_payment, *booking.extra_payments]
    return any(p is not None and p.payment_id == payment.payment_id for p in seen)


def amount_problem(booking: Booking, payment: Payment, *, rescue: bool = False) -> str | None:
    """Why this payment does not pay for the held reservations, or None if it does.

    A rescue (new hold after a lapse) is accepted when its total is not above the amount
    paid; a normal payment must match the total exactly.
    """
    total = booking.total_minor
    if total is None:
        return "no reservation total to compare with"
    if payment.currency.lower() != booking.currency.lower():
        return f"currency {payment.currency} differs from {booking.currency}"
    if rescue:
        if total > payment.amount_minor:
            return f"new total {total} is above the {payment.amount_minor} paid"
        return None
    if total != payment.amount_minor:
        return f"amount {payment.amount_minor} differs from the reservation total {total}"
    return None


def settle_reserved(booking: Booking, payment: Payment, now: datetime) -> Change:
    """A payment meets held reservations: paid, or refund_required with the reason."""
    problem = amount_problem(booking, payment, rescue=booking.rescue)
    booking.payment = payment
    booking.pending_payment = None
    if problem is not None:
        booking.state = State.REFUND_REQUIRED
        booking.reason = f"amount mismatch: {problem}"
        return Change(booking, booking.reason)
    expires = booking.earliest_expires_at
    if expires is not None and expires <= now and not booking.rescue:
        # The hold lapsed before the money came: try once to reserve again.
        return start_rescue(booking, payment, "payment arrived after the hold lapsed")
    booking.state = State.PAID
    reason = "payment received"
    if booking.rescue:
        reason = "rescued: reserved again after a late payment, total within amount paid"
    return Change(booking, reason)


def start_rescue(booking: Booking, payment: Payment, why: str) -> Change:
    """Late money for a cancelled or lapsed hold: reserve the same items once more."""
    if booking.rescue:
        booking.state = State.REFUND_REQUIRED
        booking.payment = payment
        booking.reason = f"{why}; the rescue was already tried"
        return Change(booking, booking.reason)
    booking.rescue = True
    booking.released_reservations.extend(booking.reservations)
    booking.reservations = []
    booking.payment = None
    booking.pending_payment = payment
    booking.state = State.RESERVING
    return Change(booking, f"{why}: rescue, reserving the same items again")


def apply_payment(booking: Booking, payment: Payment, now: datetime) -> Change | None:
    """The pure transition for a successful payment (see the module docstring)."""
    if _known(booking, payment):
        return None
    state = booking.state
    if state in (State.RECEIVED, State.RESERVING):
        if booking.pending_payment is not None:
            booking.extra_payments.append(payment)
            return Change(booking, "second payment before reservation landed", note=True)
        booking.pending_payment = payment
        return Change(booking, "payment recorded before the reservation landed", note=True)
    if state == State.AWAITING_PAYMENT:
        return settle_reserved(booking, payment, now)
    if state == State.CANCELLED and hold_live(booking, now) and not booking.rescue:
        # The hold is still live (cancelled by the merchant, or by the sweeper inside
        # its margin): order it (or refund a wrong amount), never reserve again.
        booking.reason = None
        change = settle_reserved(booking, payment, now)
        if booking.state == State.PAID:
            change.reason = "payment arrived after cancel, hold still live: ordering it"
        return change
    if state in (State.CANCELLED, State.EXPIRED):
        return start_rescue(booking, payment, f"payment arrived after the booking was {state}")
    if state == State.RESERVATION_FAILED:
        booking.payment = payment
        booking.state = State.REFUND_REQUIRED
        booking.reason = "payment arrived for a booking whose reservation failed"
        return Change(booking, booking.reason)
    if state in PAID_STATES or state in FINAL:
        booking.extra_payments.append(payment)
        return Change(booking, f"extra payment {payment.payment_id}: refund it", note=True)
    return None


def hold_live(booking: Booking, now: datetime) -> bool:
    expires = booking.earliest_expires_at
    return bool(booking.reservations) and expires is not None and expires > now


def has_success(booking: Booking, success_waiting: bool) -> bool:
    return success_waiting or booking.payment is not None or booking.pending_payment is not None


def cancel(booking: Booking, reason: str, *, success_waiting: bool) -> Change | None:
    """A merchant cancel or a provider `canceled` event: only before any success."""
    if booking.state not in CANCELLABLE or has_success(booking, success_waiting):
        return None
    booking.state = State.CANCELLED
    booking.reason = reason
    return Change(booking, reason)


def cancel_event(booking: Booking, what: str, *, success_waiting: bool) -> Change | None:
    """The provider cancelled a payment: cancel (see `cancel`) or a note, never more."""
    change = cancel(booking, f"payment cancelled: {what}", success_waiting=success_waiting)
    if change is not None:
        return change
    if booking.state == State.CANCELLED:
        return None  # idempotent
    why = "a payment succeeded" if has_success(booking, success_waiting) else booking.state
    return Change(booking, f"payment cancelled ({what}); ignored: {why}", note=True)


def failed_attempt(booking: Booking, what: str) -> Change | None:
    """A declined attempt: the customer may still pay the same payment. A note only."""
    return Change(booking, f"payment attempt failed ({what}); the customer may retry", note=True)


def payment_succeeded(
    ctx: StepContext, booking_id: str, task_id: str | None, event_id: str
) -> None:
    """Apply a stored payment event to its booking. Safe to run any number of times."""
    apply_received(ctx, booking_id, event_id, task_id=task_id)


def apply_received(
    ctx: StepContext, booking_id: str, event_id: str, *, task_id: str | None
) -> None:
    """Apply a received successful event and drop it from the booking's pending set, in
    the same compare-and-set; when there is nothing to apply (applied before, unknown
    booking, event gone), the event is dropped on its own."""
    data, current = ctx.store.payment_event_and_booking(event_id, booking_id)
    if not data:
        alert("payment_event_missing", booking_id, f"event {event_id} not found in Redis")
        ctx.store.payment_applied(booking_id, event_id)
        return
    payment = data.payment
    result: UpdateResult = UpdateResult(None)
    if current is not None:
        result = ctx.store.update(
            booking_id,
            lambda b: apply_payment(b, payment, ctx.now()),
            task_id=task_id,
            current=current,
            applies_event=event_id,
        )
    booking = result.booking
    if not result.changed:
        ctx.store.payment_applied(booking_id, event_id)
    if booking is None:
        alert("unknown_booking", booking_id, f"payment {payment.payment_id} for unknown booking")
        return
    if result.changed and booking.extra_payments and booking.extra_payments[-1] == payment:
        alert(
            "extra_payment",
            booking_id,
            f"payment {payment.payment_id} arrived for a booking already paid: refund it",
            amount_minor=payment.amount_minor,
        )
    after_transition(booking, result.entered, ctx.enqueue)
