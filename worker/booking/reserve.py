"""Hold the tickets: Korus `reservations/_bulk` (booking.reserve).

Idempotency: the step takes the booking's reserve claim with a compare-and-set (received
-> reserving, or reserving with no live claim: a rescue, or a claim whose worker died),
calls Korus with no lock held, then records the result with another compare-and-set that
requires the booking still to be `reserving`. A duplicate reserve message finds the live
claim and does nothing, so it never makes a second hold. Korus has no idempotency key, no
way to find a hold by our reference and no release call: only when the claim's worker
died (its liveness key or its lease lapsed) is the call made again, noted on the
timeline; the first hold, if Korus made it, lapses at its expiresAt.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from worker.booking import claims
from worker.booking.context import StepContext
from worker.booking.effects import after_transition
from worker.booking.korus_mapping import reservation_items
from worker.booking.payment import settle_reserved
from worker.booking.record import Booking, HeldReservation
from worker.booking.states import State
from worker.booking.store import Change, UpdateResult
from worker.korus.errors import (
    KorusClientError,
    KorusNotFoundError,
    KorusOutcomeUnknownError,
    KorusRejectedError,
)
from worker.korus.iris import iri_of
from worker.korus.models import BulkReservationResult

STEP = "reserve"


def begin(
    booking: Booking,
    *,
    task_id: str | None,
    owner: str | None,
    now: datetime,
    lease: timedelta,
    seen: int | None,
    holder_alive: bool,
) -> Change | None:
    """Take the reserve claim (see the module docstring); None if another one is live."""
    if booking.state not in (State.RECEIVED, State.RESERVING):
        return None
    previous = booking.claim if booking.claim and booking.claim.step == STEP else None
    claim = claims.take(
        booking,
        STEP,
        task_id=task_id,
        owner=owner,
        now=now,
        lease=lease,
        seen=seen,
        holder_alive=holder_alive,
    )
    if claim is None:
        return None
    booking.state = State.RESERVING
    booking.reserve_attempts += 1
    if previous is None:
        return Change(booking, f"reserving tickets (claim {claim.number})")
    if previous.lease_until <= previous.started_at:  # released after a failed call
        return Change(booking, f"reserving again (claim {claim.number})")
    return Change(
        booking,
        f"reserve claim {previous.number} lapsed (its worker stopped): reserving again "
        f"(claim {claim.number}); a hold it may have made lapses by itself",
    )


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
    current = ctx.store.load(booking_id)
    if current is None:
        return
    held = current.claim if current.claim and current.claim.step == STEP else None
    owner = ctx.owner()
    started = ctx.store.update(
        booking_id,
        lambda b: begin(
            b,
            task_id=task_id,
            owner=owner,
            now=ctx.now(),
            lease=timedelta(seconds=ctx.settings.order_lease_seconds),
            seen=held.number if held else None,
            holder_alive=ctx.owner_alive(held.owner) if held else True,
        ),
        task_id=task_id,
        current=current,
    )
    booking = started.booking
    if booking is None:
        return
    if not started.changed:
        if booking.state != State.RESERVING:
            after_transition(booking, [], ctx.enqueue)  # redelivered after the fact
        return  # another message holds the live claim
    assert booking.claim is not None
    number = booking.claim.number
    try:
        result = ctx.korus.reserve(reservation_items(booking.items), language=booking.language)
    except BaseException as error:
        if not isinstance(error, KorusRejectedError | KorusClientError | KorusNotFoundError):
            release_claim(ctx, booking_id, number, f"reserve call failed: {error}", task_id)
            raise
        outcome = record_refusal(ctx, booking_id, error, task_id)
    else:
        holds = held_from(result)
        failed = [dict(item) for item in result.failed]
        outcome = ctx.store.update(
            booking_id,
            lambda b: record_reservations(b, holds, failed, ctx.now()),
            task_id=task_id,
        )
    if outcome.booking is not None:
        after_transition(outcome.booking, outcome.entered, ctx.enqueue)


def release_claim(
    ctx: StepContext, booking_id: str, number: int, reason: str, task_id: str | None
) -> None:
    """The call failed: its retry (any message) may take the claim at once."""

    def transition(booking: Booking) -> Change | None:
        released = claims.release(booking, STEP, number)
        return None if released is None else Change(released, reason[:300], note=True)

    with contextlib.suppress(Exception):  # the lease lapses by itself
        ctx.store.update(booking_id, transition, task_id=task_id)


def record_refusal(
    ctx: StepContext, booking_id: str, error: BaseException, task_id: str | None
) -> UpdateResult:
    """Korus refused the reservation for good: record why (reservation_failed)."""
    if isinstance(error, KorusRejectedError):
        failed = [
            {"propertyPath": v.property_path, "message": v.message, "code": v.code}
            for v in error.violations
        ] or [{"message": error.message}]
    else:
        failed = [{"message": str(error)}]
    return ctx.store.update(
        booking_id, lambda b: record_reservations(b, [], failed, ctx.now()), task_id=task_id
    )
