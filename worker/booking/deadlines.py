"""When the sweeper must next look at a booking (the score in the deadline index)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.booking.record import Booking
from worker.booking.states import CLOSED, State


@dataclass(frozen=True)
class DeadlinePolicy:
    cancel_margin: timedelta = timedelta(seconds=60)
    stuck_after: timedelta = timedelta(seconds=300)


_WORKING = {
    State.RECEIVED,
    State.RESERVING,
    State.PAID,
    State.ORDERING,
    State.ORDER_UNCERTAIN,
    State.ORDERED,
    State.FETCHING_DOCUMENTS,
    State.AWAITING_BENEFICIARY,
}


def next_deadline(booking: Booking, policy: DeadlinePolicy) -> datetime | None:
    """The earliest moment the sweeper has something to do for this booking, or None.

    - awaiting payment: cancel the hold `cancel_margin` before its earliest expiresAt;
    - paid but not yet ordered: alert (and hurry create_order) at the same margin;
    - any working state: detect "stuck" `stuck_after` the last change;
    - documents pending: the earliest downloadableAt still missing a URL.
    """
    if booking.state in CLOSED or booking.state == State.COMPLETED:
        return None
    candidates: list[datetime] = []
    expires = booking.earliest_expires_at
    if booking.state == State.AWAITING_PAYMENT and expires is not None:
        candidates.append(expires - policy.cancel_margin)
    if booking.state in {State.PAID, State.ORDERING, State.ORDER_UNCERTAIN} and expires:
        if "hold_expiring" not in booking.alerts:
            candidates.append(expires - policy.cancel_margin)
    if booking.state in _WORKING:
        candidates.append(booking.updated_at + policy.stuck_after)
    if booking.state == State.DOCUMENTS_PENDING:
        waiting = [
            d.downloadable_at
            for d in booking.documents
            if d.temporary_url is None and d.downloadable_at is not None
        ]
        candidates.append(min(waiting) if waiting else booking.updated_at + policy.stuck_after)
    return min(candidates) if candidates else None
