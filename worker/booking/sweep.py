"""The periodic sweep (booking.sweep): act on bookings whose deadline has come.

Cost: O(log n + due) per run, never a scan. Due ids are *claimed* from the deadline index
by one Lua script that moves their score a lease into the future, so two overlapping
sweeps never take the same booking, and a booking whose sweep died reappears when the
lease ends. Records are loaded in one pipelined round trip per batch; every action is a
compare-and-set that re-checks the state, so a sweep racing a task changes nothing twice.

First, for every claimed booking, received payment events not yet applied are applied
(the payment task's message may have been lost with a killed worker): nothing is closed
while money waits to be recorded.

What is due, per state (worker.booking.deadlines computes the score):
- awaiting_payment, `cancel_margin` before the earliest expiresAt: cancel the hold (or
  mark it expired if it already lapsed); the transition sends the merchant callback;
- paid / ordering / order_uncertain near expiresAt: alert, and put create_order at the
  head of the payments queue (once per booking);
- documents_pending at its `retry_at` (the step's one wake-up; behind a broker
  countdown only the backstop of a lost message): fetch_documents;
- a state a task drives (states.DRIVER), `redrive_after` its last change or at its
  `retry_at`: if its step holds no live claim (lease running and owner's liveness key
  present), enqueue the driving task again; without progress for `stuck_after`, alert;
- awaiting_beneficiary: alert once when stuck; after `beneficiary_wait`, refund_required.

Merchant callbacks due (a scheduled retry, a lapsed sending lease, a lost message) are
claimed from their own index the same way and sent again.

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
from worker.booking.deadlines import DRIVEN, next_deadline
from worker.booking.effects import after_transition, send_driver
from worker.booking.payment import apply_received
from worker.booking.record import Booking
from worker.booking.states import CLOSED, State
from worker.booking.store import Change, PaymentWaitingError

# Far above the time a batch takes (`make bench-sweep`: ~0.5 ms per due booking, so
# ~0.25 s for a batch of 500): a live sweep never loses its claim to another one, and the
# bookings of a sweep that died come back a minute later.
CLAIM_LEASE_SECONDS = 60

# Operator-visible counters of the sweeper (action -> count, runs, last run time and
# duration; `redis-cli HGETALL bw:stats:sweep`), one pipelined write per run.
SWEEP_STATS = f"{keys.PREFIX}:stats:sweep"

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


def claim_due(ctx: StepContext, now: datetime, limit: int) -> tuple[list[str], float]:
    """Atomically take up to `limit` due ids; returns them and the lease score they got."""
    stamp = now.timestamp()
    lease = stamp + CLAIM_LEASE_SECONDS
    return ctx.store.claim_due(stamp, limit, lease), lease


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
    # A successful payment event received since the pending ones were applied refuses
    # the write (checked with the compare-and-set): its message or the next sweep
    # applies it, and the hold is ordered instead of cancelled.
    try:
        result = ctx.store.update(
            booking.id,
            lambda b: _close_hold(b, now),
            task_id="sweep",
            current=booking,
            index_score=lease,
            unless_payment_waiting=True,
        )
    except PaymentWaitingError:
        return "payment_waiting"
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


def claim_live(ctx: StepContext, booking: Booking, now: datetime) -> bool:
    """Whether a task is working on the booking's step right now (lease and liveness)."""
    claim = booking.claim
    if booking.state in (State.RESERVING, State.FETCHING_DOCUMENTS) and claim is not None:
        return claim.lease_until > now and ctx.owner_alive(claim.owner)
    attempt = booking.order_attempt
    if booking.state == State.ORDERING and attempt is not None and attempt.sent:
        return attempt.lease_until > now and ctx.owner_alive(attempt.owner)
    return False


def redrive(ctx: StepContext, booking: Booking, now: datetime, lease: float) -> str:
    """A driven booking is due: drive it again unless its step's claim is live.

    The message goes out before any note, and the booking is looked at again
    `redrive_after` later (a message that never runs is sent again then)."""
    policy = ctx.store.deadline_policy
    again = (now + policy.redrive_after).timestamp()
    if booking.retry_at is not None and booking.retry_at > now:
        reschedule(ctx, booking, now, lease)
        return "rescheduled"
    if claim_live(ctx, booking, now):
        rescore(ctx, booking.id, lease, again)
        return "busy"
    send_driver(booking.id, booking.state, ctx.enqueue, urgent=booking.state in _ORDERING)
    if booking.updated_at + policy.stuck_after <= now:
        note_stuck(ctx, booking, now)
        return "stuck"
    rescore(ctx, booking.id, lease, again)
    return "redriven"


def note_stuck(ctx: StepContext, booking: Booking, now: datetime) -> bool:
    """No progress for `stuck_after`: a timeline note (which re-scores the booking) and
    an alert."""
    state = booking.state
    idle = int((now - booking.updated_at).total_seconds())
    kind = f"stuck:{state.value}"
    noted = ctx.store.update(
        booking.id,
        lambda b: _note(b, state, kind, f"no progress in {state} for {idle}s: driven again"),
        task_id="sweep",
        current=booking,
    )
    if noted.changed:
        alert("stuck", booking.id, f"no progress in {state} for {idle}s", state=state.value)
    return noted.changed


def _beneficiary_timeout(booking: Booking, waited: int) -> Change | None:
    if booking.state != State.AWAITING_BENEFICIARY:
        return None
    booking.state = State.REFUND_REQUIRED
    booking.reason = (
        f"beneficiary data not received within {waited}s: the ordered tickets cannot be "
        "issued; cancel them at Korus and refund"
    )
    return Change(booking, booking.reason)


def close_awaiting_beneficiary(ctx: StepContext, booking: Booking, now: datetime) -> str:
    waited = int((now - booking.updated_at).total_seconds())
    result = ctx.store.update(
        booking.id, lambda b: _beneficiary_timeout(b, waited), task_id="sweep", current=booking
    )
    if result.booking is not None:
        after_transition(result.booking, result.entered, ctx.enqueue)
    return "beneficiary_timeout" if result.changed else "skipped"


def documents_due(booking: Booking, now: datetime) -> bool:
    """Whether the documents step is to run again: at its `retry_at` (when a broker
    countdown owns the wait, that is its backstop: the message was lost), never before;
    for records written before the step set it, once a document is downloadable."""
    wake = booking.retry_at
    if wake is not None and wake > booking.updated_at:
        return wake <= now
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
    if state == State.DOCUMENTS_PENDING and documents_due(booking, now):
        ctx.enqueue.fetch_documents(booking.id)
        rescore(ctx, booking.id, lease, (now + policy.redrive_after).timestamp())
        return "documents"
    if state in DRIVEN:
        return redrive(ctx, booking, now, lease)
    if state == State.AWAITING_BENEFICIARY:
        if booking.updated_at + policy.beneficiary_wait <= now:
            return close_awaiting_beneficiary(ctx, booking, now)
        if stuck:
            if f"stuck:{state.value}" not in booking.alerts:
                note_stuck(ctx, booking, now)  # the note re-scores the booking
                return "stuck"
            # Alerted already: look again a stuck period from now (or at the timeout).
            rescore(ctx, booking.id, lease, (now + policy.stuck_after).timestamp())
            return "waiting"
    # Nothing due after all (the index entry was early or stale): back to its deadline.
    if not reschedule(ctx, booking, now, lease):
        rescore(ctx, booking.id, lease, (now + policy.redrive_after).timestamp())
    return "rescheduled"


def apply_pending_payments(
    ctx: StepContext, bookings: list[Booking], actions: Counter[str]
) -> list[Booking]:
    """Apply received payment events whose message did not (yet) do it; returns the
    bookings as they are now."""
    pending = ctx.store.pending_payment_events(b.id for b in bookings)
    if not pending:
        return bookings
    fresh: list[Booking] = []
    for booking in bookings:
        events = pending.get(booking.id)
        if not events:
            fresh.append(booking)
            continue
        for event_key in events:
            apply_received(ctx, booking.id, event_key, task_id="sweep")
            actions["payment_applied"] += 1
        reloaded = ctx.store.load(booking.id)
        if reloaded is not None:
            fresh.append(reloaded)
    return fresh


def sweep_callbacks(ctx: StepContext, now: datetime, limit: int) -> int:
    """Send again the merchant callbacks that are due (retry time, lapsed lease)."""
    stamp = now.timestamp()
    due = ctx.store.claim_due_callbacks(stamp, limit, stamp + CLAIM_LEASE_SECONDS)
    for booking_id, event_type in due:
        ctx.enqueue.notify(booking_id, event_type)
    return len(due)


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
            ctx.store.drop_deadlines(missing)
            actions["dropped"] += len(missing)
        found = apply_pending_payments(ctx, found, actions)
        ctx.store.reindex(found)
        for booking in found:
            actions[sweep_one(ctx, booking, now, lease)] += 1
        if len(due) < size:
            break
    callbacks = sweep_callbacks(ctx, ctx.now(), size)
    if callbacks:
        actions["callbacks"] += callbacks
    prune_listings(ctx)
    record_stats(ctx, actions, time.perf_counter() - started)
    return actions


def record_stats(ctx: StepContext, actions: Counter[str], seconds: float) -> None:
    ctx.store.record_sweep_stats(SWEEP_STATS, actions, ctx.now().isoformat(), seconds)


def prune_listings(ctx: StepContext) -> None:
    """Drop listing entries of closed bookings older than the retention (records are gone)."""
    horizon = time.time() - ctx.settings.retention_seconds - timedelta(days=1).total_seconds()
    ctx.store.prune_listings(CLOSED, horizon)
