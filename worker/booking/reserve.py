"""Hold the tickets: Korus `reservations/_bulk` (booking.reserve).

Idempotency: the step moves received -> reserving with a compare-and-set, calls Korus
with no lock held, then records the result with another compare-and-set that requires
the booking still to be `reserving`. Korus has no idempotency key and no release call for
reservations: if a worker dies after Korus answered and before the result was written,
the redelivered task reserves again and the first hold simply lapses at its expiresAt.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.booking.context import StepContext
from worker.booking.effects import after_transition
from worker.booking.payment import settle_reserved
from worker.booking.record import Booking, HeldReservation
from worker.booking.states import State
from worker.booking.store import Change
from worker.korus.errors import (
    KorusClientError,
    KorusNotFoundError,
    KorusOutcomeUnknownError,
    KorusRejectedError,
)
from worker.korus.iris import iri_of
from worker.korus.models import BulkReservationResult


def _begin(booking: Booking) -> Change | None:
    if booking.state == State.RECEIVED:
        booking.state = State.RESERVING
        booking.reserve_attempts += 1
        return Change(booking, "reserving tickets")
    return None


def held_from(result: BulkReservationResult) -> list[HeldReservation]:
    held = []
    for reservation in result.reservations:
        if reservation.id is None or reservation.expires_at is None:
            raise KorusOutcomeUnknownError("reservation without id or expiresAt in answer")
        held.append(
            HeldReservation(
                id=reservation.id,
                iri=reservation.real_iri or f"/v1/booking/reservations/{reservation.id}",
                expires_at=reservation.expires_at,
                total_incl_tax=reservation.total_amount_incl_tax or Decimal("0"),
                offer=iri_of(reservation.items[0].offer) if reservation.items else None,
            )
        )
    return held


def record_reservations(
    booking: Booking,
    held: list[HeldReservation],
    failed: list[dict[str, Any]],
    now: datetime,
) -> Change | None:
    """The pure transition that lands a reservation result on a `reserving` booking."""
    if booking.state != State.RESERVING:
        return None  # cancelled meanwhile: the holds lapse by themselves
    booking.failed_reservations = failed
    complete = not failed and len(held) == len(booking.items)
    keep = complete or (booking.policy == "partial" and bool(held))
    if not keep:
        booking.released_reservations.extend(held)
        if booking.pending_payment is not None:
            booking.payment = booking.pending_payment
            booking.pending_payment = None
            booking.state = State.REFUND_REQUIRED
            booking.reason = "paid, but the tickets could not be reserved"
            return Change(booking, booking.reason)
        booking.state = State.RESERVATION_FAILED
        booking.reason = f"{len(failed)} of {len(booking.items)} items could not be reserved"
        return Change(booking, booking.reason)
    booking.reservations = held
    booking.total_incl_tax = sum((r.total_incl_tax for r in held), Decimal("0"))
    if booking.pending_payment is not None:
        return settle_reserved(booking, booking.pending_payment, now)
    booking.state = State.AWAITING_PAYMENT
    return Change(booking, f"{len(held)} reservation(s) held")


def reserve(ctx: StepContext, booking_id: str, task_id: str | None) -> None:
    """Reserve the booking's items. Transient Korus errors propagate for a task retry."""
    started = ctx.store.update(booking_id, _begin, task_id=task_id)
    booking = started.booking
    if booking is None or booking.state != State.RESERVING:
        if booking is not None:
            after_transition(booking, started.entered, ctx.enqueue)
        return
    try:
        result = ctx.korus.reserve(booking.items, language=booking.language)
    except KorusRejectedError as error:
        failed = [
            {"propertyPath": v.property_path, "message": v.message, "code": v.code}
            for v in error.violations
        ] or [{"message": error.message}]
        outcome = ctx.store.update(
            booking_id, lambda b: record_reservations(b, [], failed, ctx.now()), task_id=task_id
        )
    except (KorusClientError, KorusNotFoundError) as error:
        failed = [{"message": str(error)}]
        outcome = ctx.store.update(
            booking_id, lambda b: record_reservations(b, [], failed, ctx.now()), task_id=task_id
        )
    else:
        held = held_from(result)
        failed = [dict(item) for item in result.failed]
        outcome = ctx.store.update(
            booking_id,
            lambda b: record_reservations(b, held, failed, ctx.now()),
            task_id=task_id,
        )
    if outcome.booking is not None:
        after_transition(outcome.booking, outcome.entered, ctx.enqueue)
