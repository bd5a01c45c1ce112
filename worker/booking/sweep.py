"""The periodic sweep (booking.sweep): act on bookings whose deadline has come.

Cost: O(log n + due) per run, never a scan. Due ids are *claimed* from the deadline index
by one Lua script that moves their score a lease into the future, so two overlapping
sweeps never take the same booking, and a booking whose sweep died reappears when the
lease ends. Records are loaded in one pipelined round trip per batch; every action is a
compare-and-set that re-checks the state, so a sweep racing a task changes nothing twice.

What is due, per state (worker.booking.deadlines computes the score):
- awaiting_payment, `cancel_margin` before the earliest expiresAt: cancel the hold (or
  mark it expired if it already lapsed); the transition sends the merchant callback;
- paid / ordering / order_uncertain near expiresAt: alert, and put create_order at the
  head of the payments queue (once per booking);
- documents_pending whose downloadableAt has come: fetch_documents;
- any working state without progress for `stuck_after`: alert and enqueue again the task
  that drives it (awaiting_beneficiary cannot be driven: it alerts once).

After an action that only enqueues, the booking keeps its lease score: the task's own
compare-and-set re-scores it, and if the task never runs the sweep looks again when the
lease ends. Index scores written from a record read earlier are guarded (`_RESCORE`):
they apply only if no writer touched the entry since the claim.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta

from worker.alerts import alert
from worker.booking import keys
from worker.booking.context import StepContext
from worker.booking.deadlines import next_deadline
from worker.booking.effects import after_transition
from worker.booking.record import Booking
from worker.booking.states import CLOSED, State
from worker.booking.store import Change

# Far above the time a batch takes (`make bench-sweep`: ~0.5 ms per due booking, so
# ~0.25 s for a batch of 500): a live sweep never loses its claim to another one, and the
# bookings of a sweep that died come back a minute later.
CLAIM_LEASE_SECONDS = 60

# Operator-visible counters of the sweeper (action -> count, runs, last run time and
# duration; `redis-cli HGETALL bw:stats:sweep`), one pipelined write per run.
SWEEP_STATS = f"{keys.PREFIX}:stats:sweep"

# KEYS: deadline index. ARGV: now, limit, lease score. Due ids, each moved to the lease.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return due
"""

# KEYS: deadline index. ARGV: id, the lease score we set, new score ('' to remove).
# Applies only if the entry still holds our lease: a writer that re-scored the booking
# after the claim knows better than the record this sweep read.
_RESCORE = """
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not current) or tonumber(current) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '' then redis.call('ZREM', KEYS[1], ARGV[1])
else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
return 1
"""

_ORDERING = (State.PAID, State.ORDERING, State.ORDER_UNCERTAIN)
_FULFILLING = (State.ORDERED, State.FETCHING_DOCUMENTS, State.DOCUMENTS_PENDING)
_RESERVING = (State.RECEIVED, State.RESERVING)
_DRIVEN = _RESERVING + _ORDERING + _FULFILLING


def claim_due(ctx: StepContext, now: datetime, limit: int) -> tuple[list[str], float]:
    """Atomically take up to `limit` due ids; returns them and the lease score they got."""
    stamp = now.timestamp()
    lease = stamp + CLAIM_LEASE_SECONDS
    due = ctx.store.run_script(_CLAIM, [keys.DEADLINES], [stamp, limit, repr(lease)])
    return [str(member) for member in due], lease


def rescore(ctx: StepContext, booking_id: str, lease: float, score: float | None) -> bool:
    """Move a claimed booking from its lease to `score` (None: out of the index), unless
    a writer re-scored it since the claim."""
    target = "" if score is None else repr(score)
    return bool(ctx.store.run_script(_RESCORE, [keys.DEADLINES], [booking_id, repr(lease), target]))


def reschedule(ctx: StepContext, booking: Booking, now: datetime, lease: float) -> bool:
    """Back to the deadline the record asks for. A deadline that is not in the future here
    would be claimed again at once (a record this sweep could not act on): it keeps the
    lease instead, so nothing spins."""
    deadline = next_deadline(booking, ctx.store.deadline_policy)
    if deadline is not None and deadline <= now:
        return False
    return rescore(ctx, booking.id, lease, None if deadline is None else deadline.timestamp())


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


def close_unpaid(ctx: StepContext, booking: Booking, now: datetime, lease: float) -> str:
    # The index entry holds our lease: the store drops it with the record's closing write.
    result = ctx.store.update(
        booking.id,
        lambda b: _close_hold(b, now),
        task_id="sweep",
        current=booking,
        index_score=lease,
    )
    if not result.changed or result.booking is None:
        return "skipped"
    after_transition(result.booking, result.entered, ctx.enqueue)
    return result.booking.state.value  # "cancelled" or "expired"


def hurry_order(ctx: StepContext, booking: Booking, expires: datetime) -> str:
    """Paid but not ordered while the hold nearly lapses: order first, ask questions later.

    The message goes out before the note: a crash in between only repeats the hurry at
    the next sweep (create_order is idempotent); the other order would lose it."""
    ctx.enqueue.create_order(booking.id, urgent=True)
    noted = ctx.store.update(
        booking.id,
        lambda b: _note(b, booking.state, "hold_expiring", "hold nearly lapsed: order hurried"),
        task_id="sweep",
        current=booking,
    )
    if noted.changed:
        alert(
            "hold_expiring",
            booking.id,
            f"paid but not ordered in state {booking.state}; hold lapses at {expires}",
            state=booking.state.value,
        )
    return "hurried"


def redrive_stuck(ctx: StepContext, booking: Booking, now: datetime) -> str:
    """No progress for `stuck_after`: enqueue the driving task again, then alert."""
    state = booking.state
    idle = int((now - booking.updated_at).total_seconds())
    if state in _RESERVING:
        ctx.enqueue.reserve(booking.id)
    elif state in _ORDERING:
        ctx.enqueue.create_order(booking.id, urgent=True)
    elif state in _FULFILLING:
        ctx.enqueue.fetch_documents(booking.id)
    kind = f"stuck:{state.value}"
    if state == State.AWAITING_BENEFICIARY and kind in booking.alerts:
        return "waiting"  # nothing to drive: the merchant must send beneficiary data
    noted = ctx.store.update(
        booking.id,
        lambda b: _note(b, state, kind, f"no progress in {state} for {idle}s: driven again"),
        task_id="sweep",
        current=booking,
    )
    if noted.changed:
        alert("stuck", booking.id, f"no progress in {state} for {idle}s", state=state.value)
    return "stuck"


def documents_due(booking: Booking, now: datetime) -> bool:
    waiting = [d.downloadable_at for d in booking.documents if not d.temporary_url]
    return any(moment is None or moment <= now for moment in waiting)


def sweep_one(ctx: StepContext, booking: Booking, now: datetime, lease: float) -> str:
    """Do what is due for one claimed booking; returns the action (for counts and logs)."""
    policy = ctx.store.deadline_policy
    state = booking.state
    expires = booking.earliest_expires_at
    near_expiry = expires is not None and expires - policy.cancel_margin <= now
    stuck = booking.updated_at + policy.stuck_after <= now
    if state == State.AWAITING_PAYMENT and near_expiry:
        return close_unpaid(ctx, booking, now, lease)
    if state in _ORDERING and near_expiry and "hold_expiring" not in booking.alerts:
        assert expires is not None
        return hurry_order(ctx, booking, expires)
    if state == State.DOCUMENTS_PENDING and documents_due(booking, now) and not stuck:
        ctx.enqueue.fetch_documents(booking.id)
        return "documents"
    if stuck and (state in _DRIVEN or state == State.AWAITING_BENEFICIARY):
        action = redrive_stuck(ctx, booking, now)
        if action == "waiting":  # alerted already: look again a stuck period from now
            rescore(ctx, booking.id, lease, (now + policy.stuck_after).timestamp())
        return action
    # Nothing due after all (the index entry was early or stale): back to its deadline.
    reschedule(ctx, booking, now, lease)
    return "rescheduled"


def sweep(
    ctx: StepContext, *, batch_size: int | None = None, max_batches: int = 10
) -> Counter[str]:
    """Handle due bookings in bounded batches; safe to run concurrently with itself.

    At most `batch_size * max_batches` bookings per run (5,000 by default); anything
    left is due at once and the next beat tick continues.
    """
    started = time.perf_counter()
    size = batch_size or ctx.settings.sweep_batch_size
    actions: Counter[str] = Counter()
    for _ in range(max_batches):
        now = ctx.now()
        due, lease = claim_due(ctx, now, size)
        if not due:
            break
        found = ctx.store.load_many(due)
        missing = set(due) - {b.id for b in found}
        if missing:  # records gone (retention): drop their hints in one call
            ctx.redis.zrem(keys.DEADLINES, *missing)
            actions["dropped"] += len(missing)
        for booking in found:
            actions[sweep_one(ctx, booking, now, lease)] += 1
        if len(due) < size:
            break
    prune_listings(ctx)
    record_stats(ctx, actions, time.perf_counter() - started)
    return actions


def record_stats(ctx: StepContext, actions: Counter[str], seconds: float) -> None:
    pipe = ctx.redis.pipeline(transaction=False)
    for action, count in actions.items():
        pipe.hincrby(SWEEP_STATS, action, count)
    pipe.hincrby(SWEEP_STATS, "runs", 1)
    pipe.hset(
        SWEEP_STATS,
        mapping={"last_run_at": ctx.now().isoformat(), "last_ms": f"{seconds * 1000:.1f}"},
    )
    pipe.execute()


def prune_listings(ctx: StepContext) -> None:
    """Drop listing entries of closed bookings older than the retention (records are gone)."""
    horizon = time.time() - ctx.settings.retention_seconds - timedelta(days=1).total_seconds()
    pipe = ctx.redis.pipeline(transaction=False)
    for state in CLOSED:
        pipe.zremrangebyscore(keys.by_state(state.value), "-inf", horizon)
    pipe.execute()
