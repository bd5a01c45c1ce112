"""The periodic sweep (booking.sweep): act on bookings whose deadline has come.

Cost: O(log n + due) per run. Due ids are *claimed* from the deadline index by one Lua
script that pushes their score a lease into the future, so two overlapping sweeps never
take the same booking; a booking whose sweep died reappears when the lease ends. Records
are loaded in one pipelined round trip per batch, and every action is a compare-and-set
that re-checks the state, so a sweep racing a task changes nothing twice.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta

from worker.alerts import alert
from worker.booking import keys
from worker.booking.context import StepContext
from worker.booking.effects import after_transition
from worker.booking.record import Booking
from worker.booking.states import CLOSED, State
from worker.booking.store import Change

CLAIM_LEASE_SECONDS = 60

_CLAIM_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return due
"""

_ORDERING = (State.PAID, State.ORDERING, State.ORDER_UNCERTAIN)
_FULFILLING = (State.ORDERED, State.FETCHING_DOCUMENTS)


def claim_due(ctx: StepContext, now: datetime, limit: int) -> list[str]:
    script = ctx.redis.register_script(_CLAIM_SCRIPT)
    stamp = now.timestamp()
    due = script(keys=[keys.DEADLINES], args=[stamp, limit, stamp + CLAIM_LEASE_SECONDS])
    return [str(member) for member in due]


def _close_hold(booking: Booking, now: datetime) -> Change | None:
    if booking.state != State.AWAITING_PAYMENT or booking.earliest_expires_at is None:
        return None
    if now >= booking.earliest_expires_at:
        booking.state = State.EXPIRED
        booking.reason = "the hold lapsed without payment"
    else:
        booking.state = State.CANCELLED
        booking.reason = "unpaid hold cancelled shortly before it lapses"
    return Change(booking, booking.reason)


def _note(booking: Booking, state: State, alert_kind: str, reason: str) -> Change | None:
    """A timeline note that also moves `updated_at`, so the next stuck check is later."""
    if booking.state != state:
        return None
    if alert_kind not in booking.alerts:
        booking.alerts.append(alert_kind)
    return Change(booking, reason, note=True)


def sweep_one(ctx: StepContext, booking: Booking, now: datetime) -> str:
    """Do what is due for one booking; returns the action taken (for counts and logs)."""
    policy = ctx.store.deadline_policy
    state = booking.state
    expires = booking.earliest_expires_at
    stuck = booking.updated_at + policy.stuck_after <= now
    near_expiry = expires is not None and expires - policy.cancel_margin <= now
    if state == State.AWAITING_PAYMENT and near_expiry:
        result = ctx.store.update(booking.id, lambda b: _close_hold(b, now), task_id="sweep")
        if result.booking is not None:
            after_transition(result.booking, result.entered, ctx.enqueue)
        return (
            "expired" if result.booking and result.booking.state == State.EXPIRED else "cancelled"
        )
    if state in _ORDERING and near_expiry and "hold_expiring" not in booking.alerts:
        alert("hold_expiring", booking.id, f"paid but not ordered; hold lapses at {expires}")
        ctx.store.update(
            booking.id,
            lambda b: _note(b, state, "hold_expiring", "hold nearly lapsed: order hurried"),
            task_id="sweep",
        )
        ctx.enqueue.create_order(booking.id, urgent=True)
        return "hurried"
    if state == State.DOCUMENTS_PENDING:
        waiting = [d.downloadable_at for d in booking.documents if not d.temporary_url]
        if any(w is None or w <= now for w in waiting) or stuck:
            ctx.enqueue.fetch_documents(booking.id)
            ctx.store.reindex(booking)
            return "documents"
    if stuck and state not in CLOSED and state not in (State.AWAITING_PAYMENT, State.COMPLETED):
        idle = int((now - booking.updated_at).total_seconds())
        alert("stuck", booking.id, f"no progress in {state} for {idle}s", state=state.value)
        ctx.store.update(
            booking.id,
            lambda b: _note(b, state, "stuck", f"stuck in {state}: retried"),
            task_id="sweep",
        )
        if state in (State.RECEIVED, State.RESERVING):
            ctx.enqueue.reserve(booking.id)
        elif state in _ORDERING:
            ctx.enqueue.create_order(booking.id, urgent=True)
        elif state in _FULFILLING:
            ctx.enqueue.fetch_documents(booking.id)
        return "stuck"
    ctx.store.reindex(booking)
    return "rescheduled"


def sweep(
    ctx: StepContext, *, batch_size: int | None = None, max_batches: int = 10
) -> Counter[str]:
    """Handle due bookings in bounded batches; safe to run concurrently with itself."""
    size = batch_size or ctx.settings.sweep_batch_size
    actions: Counter[str] = Counter()
    for _ in range(max_batches):
        now = ctx.now()
        due = claim_due(ctx, now, size)
        if not due:
            break
        found = ctx.store.load_many(due)
        for missing in set(due) - {b.id for b in found}:
            ctx.redis.zrem(keys.DEADLINES, missing)  # record gone (retention): drop the hint
            actions["dropped"] += 1
        for booking in found:
            actions[sweep_one(ctx, booking, now)] += 1
        if len(due) < size:
            break
    prune_listings(ctx)
    return actions


def prune_listings(ctx: StepContext) -> None:
    """Drop listing entries of closed bookings older than the retention (records are gone)."""
    horizon = time.time() - ctx.settings.retention_seconds - timedelta(days=1).total_seconds()
    pipe = ctx.redis.pipeline(transaction=False)
    for state in CLOSED:
        pipe.zremrangebyscore(keys.by_state(state.value), "-inf", horizon)
    pipe.execute()
