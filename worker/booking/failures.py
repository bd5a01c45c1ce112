"""Counting a step's failures in the booking record, and parking it when they run out.

The count lives in the record, not in the broker message: a retry sent by the sweeper
(after a backoff kept in Redis, or after a killed worker) continues the same count, and
every state change (progress) starts the next step with a fresh budget (store.update).
Two budgets: transient errors (`TASK_MAX_RETRIES`) and unexpected exceptions
(`TASK_MAX_UNEXPECTED_RETRIES`). Past its budget the booking is *parked*: it keeps its
state (money and holds are never given up because of a count), the alert kind is
recorded in `alerts`, and `retry_at` tells the sweeper to try once more a stuck period
later (alerting again if that fails too). Nothing is acknowledged and forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from worker.booking.record import Booking
from worker.booking.states import CLOSED
from worker.booking.store import Change

RETRIES_EXHAUSTED = "retries_exhausted"
STEP_FAILED = "step_failed"


def count_failure(
    booking: Booking,
    *,
    task: str,
    error: str,
    unexpected: bool,
    budget: int,
    now: datetime,
    delay_for: Callable[[int], float],
    broker_max: float,
    park_for: timedelta,
) -> Change | None:
    """Record one failed attempt. `delay_for(n)`: the backoff after the n-th failure.

    A delay up to `broker_max` is left to a broker countdown (retry_at stays None);
    longer ones set `retry_at` for the sweeper.
    """
    if booking.state in CLOSED:
        return None
    if unexpected:
        booking.unexpected_failures += 1
        count = booking.unexpected_failures
    else:
        booking.step_failures += 1
        count = booking.step_failures
    if count > budget:
        kind = STEP_FAILED if unexpected else RETRIES_EXHAUSTED
        if kind not in booking.alerts:
            booking.alerts.append(kind)
        booking.retry_at = now + park_for
        return Change(
            booking,
            f"{task}: {kind} after {count} attempts ({error}); parked and alerted, "
            f"tried again at {booking.retry_at.isoformat()}",
            note=True,
        )
    delay = delay_for(count)
    booking.retry_at = now + timedelta(seconds=delay) if delay > broker_max else None
    return Change(
        booking, f"{task}: attempt {count} failed ({error}); retry in {delay:.0f}s", note=True
    )


def parked(booking: Booking, unexpected: bool, budget: int) -> bool:
    count = booking.unexpected_failures if unexpected else booking.step_failures
    return count > budget
