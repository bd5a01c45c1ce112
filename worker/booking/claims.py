"""Numbered claims with a lease on a booking's in-flight step (reserve, documents).

A step begins by taking the claim with a compare-and-set: the booking must be in the
step's state with no live claim (or a claim of the same message, redelivered after its
worker died). The claim is live until its lease ends and while its owner's liveness key
exists (worker.liveness). Ordering keeps its own numbered attempt (`OrderAttempt`),
which follows the same rules. The sweeper drives a booking whose claim lapsed again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from worker.booking.record import Booking, StepClaim


def is_live(claim: StepClaim | None, now: datetime, owner_alive: bool) -> bool:
    return claim is not None and claim.lease_until > now and owner_alive


def take(
    booking: Booking,
    step: str,
    *,
    task_id: str | None,
    owner: str | None,
    now: datetime,
    lease: timedelta,
    seen: int | None,
    holder_alive: bool,
) -> StepClaim | None:
    """Put a new claim on `booking` (mutated) or return None if another one is live.

    `seen` is the claim number the caller checked `holder_alive` for: if the record now
    holds another claim, the caller's view is stale and nothing is taken. A redelivered
    message gets no favour (a duplicate may run while the first copy still works): it
    waits until the claim is released (`release`) or lapses.
    """
    current = booking.claim if booking.claim is not None and booking.claim.step == step else None
    if current is not None:
        if current.number != seen or is_live(current, now, holder_alive):
            return None
    number = (current.number if current is not None else 0) + 1
    booking.claim = StepClaim(
        step=step,
        number=number,
        task_id=task_id,
        owner=owner,
        started_at=now,
        lease_until=now + lease,
    )
    return booking.claim


def release(booking: Booking, step: str, number: int) -> Booking | None:
    """End our claim after the step failed (nothing of ours is in flight any more), so
    its retry need not wait for the lease; the number stays, the next claim is the next
    number. None if the claim is no longer ours."""
    claim = booking.claim
    if claim is None or claim.step != step or claim.number != number:
        return None
    if claim.lease_until <= claim.started_at:
        return None  # released already
    claim.lease_until = claim.started_at
    return booking
