"""When the sweeper must next look at a booking (the score in the deadline index).

Every state that is not final has a deadline, so every booking has a way out:
- awaiting_payment: `cancel_margin` before the earliest expiresAt (cancel the hold);
- paid / ordering / order_uncertain: also that margin (alert, hurry the order);
- a state driven by a task (states.DRIVER): `retry_at` when a backoff or a parked step
  waits in Redis, otherwise `redrive_after` the last change: then the sweeper checks the
  step's claim (lease and owner liveness) and drives the booking again if none is live;
- any working state: `stuck_after` the last change (alert);
- documents_pending: its `retry_at` (the documents step's one wake-up: the sweeper's
  backstop behind a broker countdown, or the end of a longer wait); for older records,
  the earliest downloadableAt still missing a URL;
- awaiting_beneficiary: `beneficiary_wait` the last change (then refund_required).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.booking.record import Booking
from worker.booking.states import CLOSED, State


@dataclass(frozen=True)
class DeadlinePolicy:
    cancel_margin: timedelta = timedelta(seconds=60)
    stuck_after: timedelta = timedelta(seconds=300)
    redrive_after: timedelta = timedelta(seconds=25)
    beneficiary_wait: timedelta = timedelta(days=3)


# States a task drives (the keys of states.DRIVER but awaiting_beneficiary, which only
# the merchant's data or its timeout moves on).
DRIVEN = frozenset(
    {
        State.RECEIVED,
        State.RESERVING,
        State.PAID,
        State.ORDERING,
        State.ORDER_UNCERTAIN,
        State.ORDERED,
        State.FETCHING_DOCUMENTS,
    }
)

_WORKING = DRIVEN | {State.AWAITING_BENEFICIARY}


def next_deadline(booking: Booking, policy: DeadlinePolicy) -> datetime | None:
    """The earliest moment the sweeper has something to do for this booking, or None."""
    if booking.state in CLOSED or booking.state == State.COMPLETED:
        return None
    candidates: list[datetime] = []
    expires = booking.earliest_expires_at
    if booking.state == State.AWAITING_PAYMENT and expires is not None:
        candidates.append(expires - policy.cancel_margin)
    if booking.state in {State.PAID, State.ORDERING, State.ORDER_UNCERTAIN} and expires:
        if "hold_expiring" not in booking.alerts:
            candidates.append(expires - policy.cancel_margin)
    # A retry_at older than the last write was acted on already (the step ran again).
    waiting = (
        booking.retry_at if booking.retry_at and booking.retry_at > booking.updated_at else None
    )
    if booking.state in DRIVEN:
        candidates.append(waiting or booking.updated_at + policy.redrive_after)
    if booking.state in _WORKING and waiting is None:
        candidates.append(booking.updated_at + policy.stuck_after)
    if booking.state == State.AWAITING_BENEFICIARY:
        candidates.append(booking.updated_at + policy.beneficiary_wait)
    if booking.state == State.DOCUMENTS_PENDING:
        if waiting is not None:
            # The documents step's one wake-up (worker.booking.documents.next_look): the
            # sweeper's backstop behind a broker countdown, or the end of a longer wait.
            candidates.append(waiting)
        else:  # records written before the step set retry_at
            pending = [
                d.downloadable_at
                for d in booking.documents
                if d.temporary_url is None and d.downloadable_at is not None
            ]
            candidates.append(min(pending) if pending else booking.updated_at + policy.stuck_after)
    return min(candidates) if candidates else None
