"""The sweeper's domain logic (worker.booking.sweep.sweep) against real Redis.

Bookings are written through the store (so the deadline index is what the steps leave);
the enqueuer records calls, except where the broker itself is the point.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
import redis

from tests.factories import RecordingEnqueuer
from tests.ops.support import (
    make_booking,
    make_context,
    ops_settings,
    pending_documents,
)
from tests.support import broker
from worker.app import app
from worker.booking import keys
from worker.booking.context import StepContext
from worker.booking.record import Booking, utcnow
from worker.booking.states import State
from worker.booking.sweep import CLAIM_LEASE_SECONDS, SWEEP_STATS, claim_due, rescore, sweep
from worker.enqueue import CeleryEnqueuer


@pytest.fixture
def now() -> datetime:
    return utcnow()


@pytest.fixture
def enqueue() -> RecordingEnqueuer:
    return RecordingEnqueuer()


@pytest.fixture
def ctx(redis_client: redis.Redis, redis_url: str, enqueue: RecordingEnqueuer,
        now: datetime) -> StepContext:
    return make_context(redis_client, ops_settings(redis_url), enqueue, now)


def put(ctx: StepContext, booking: Booking) -> Booking:
    assert ctx.store.create(booking, reason="test fixture")
    return booking


def score(ctx: StepContext, booking_id: str) -> float | None:
    value = ctx.redis.zscore(keys.DEADLINES, booking_id)
    return None if value is None else float(value)


def reasons(ctx: StepContext, booking_id: str) -> list[str]:
    return [entry["reason"] for entry in ctx.store.timeline(booking_id)]


def alerts(caplog: pytest.LogCaptureFixture, kind: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "alert_kind", None) == kind]


def test_unpaid_hold_is_cancelled_within_the_margin_and_the_merchant_notified(
    ctx: StepContext, enqueue: RecordingEnqueuer, now: datetime
) -> None:
    due = put(ctx, make_booking(State.AWAITING_PAYMENT, now=now, expires_in=50))
    early = put(ctx, make_booking(State.AWAITING_PAYMENT, now=now, expires_in=70))

    actions = sweep(ctx)

    assert actions == Counter({"cancelled": 1})
    cancelled = ctx.store.load(due.id)
    assert cancelled is not None and cancelled.state == State.CANCELLED
    assert "unpaid hold cancelled shortly before it lapses" in reasons(ctx, due.id)
    assert enqueue.calls == [("notify", due.id, {"event": "booking.cancelled"})]
    assert score(ctx, due.id) is None  # closed: out of the deadline index
    untouched = ctx.store.load(early.id)
    assert untouched is not None and untouched.state == State.AWAITING_PAYMENT
    assert score(ctx, early.id) == pytest.approx((now + timedelta(seconds=10)).timestamp())


def test_lapsed_hold_is_marked_expired(
    ctx: StepContext, enqueue: RecordingEnqueuer, now: datetime
) -> None:
    lapsed = put(ctx, make_booking(State.AWAITING_PAYMENT, now=now, expires_in=-5))

    assert sweep(ctx) == Counter({"expired": 1})

    booking = ctx.store.load(lapsed.id)
    assert booking is not None and booking.state == State.EXPIRED
    assert enqueue.calls == [("notify", lapsed.id, {"event": "booking.expired"})]


def test_paid_not_ordered_near_expiry_alerts_once_and_hurries_the_order(
    ctx: StepContext, enqueue: RecordingEnqueuer, now: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    paid = put(ctx, make_booking(State.PAID, now=now, expires_in=30, updated_ago=20))
    caplog.set_level(logging.ERROR, logger="booking.alerts")

    assert sweep(ctx) == Counter({"hurried": 1})
    assert enqueue.calls == [("create_order", paid.id, {"urgent": True})]
    assert [r.booking_id for r in alerts(caplog, "hold_expiring")] == [paid.id]  # type: ignore[attr-defined]
    booking = ctx.store.load(paid.id)
    assert booking is not None and booking.state == State.PAID
    assert "hold_expiring" in booking.alerts
    assert "hold nearly lapsed: order hurried" in reasons(ctx, paid.id)

    # Alerted once: later sweeps only drive the order again (no order claim is live).
    ctx.clock = lambda: now + timedelta(seconds=CLAIM_LEASE_SECONDS + 1)
    assert sweep(ctx) == Counter({"redriven": 1})
    assert enqueue.calls[1:] == [("create_order", paid.id, {"urgent": True})]
    assert len(alerts(caplog, "hold_expiring")) == 1


def test_urgent_create_order_goes_to_the_head_of_the_payments_queue(
    redis_client: redis.Redis, redis_url: str, now: datetime
) -> None:
    """Through the real broker: the hurried order call lands in the priority-0 list that
    a worker pops first, ahead of an ordinary create_order sent before it."""
    enqueuer = CeleryEnqueuer(app)
    ctx = make_context(redis_client, ops_settings(redis_url), enqueuer, now)
    enqueuer.create_order("bk_ordinary")
    paid = put(ctx, make_booking(State.ORDERING, now=now, expires_in=30, updated_ago=20))

    assert sweep(ctx) == Counter({"hurried": 1})

    def queued(name: str) -> list[tuple[str, int]]:
        return [(m.headers["argsrepr"], m.priority) for m in broker.queued(redis_client, name)]

    assert queued("payments") == [(repr([paid.id]), 0)]
    assert queued("payments:3") == [("['bk_ordinary']", 5)]


@pytest.mark.parametrize(
    ("state", "driver"),
    [
        (State.RECEIVED, ("reserve", {})),
        (State.RESERVING, ("reserve", {})),
        (State.PAID, ("create_order", {"urgent": True})),
        (State.ORDERING, ("create_order", {"urgent": True})),
        (State.ORDER_UNCERTAIN, ("create_order", {"urgent": True})),
        (State.ORDERED, ("fetch_documents", {})),
        (State.FETCHING_DOCUMENTS, ("fetch_documents", {})),
    ],
)
def test_stuck_booking_alerts_and_is_driven_again(
    ctx: StepContext, enqueue: RecordingEnqueuer, now: datetime,
    caplog: pytest.LogCaptureFixture, state: State, driver: tuple[str, dict[str, bool]],
) -> None:
    # Holds far from expiry, no live claim: "no progress for redrive_after (25 s)" drives
    # the booking again; "no progress for stuck_after (300 s)" also alerts.
    stuck = put(ctx, make_booking(state, now=now, expires_in=3600, updated_ago=301))
    quiet = put(ctx, make_booking(state, now=now, expires_in=3600, updated_ago=200))
    fresh = put(ctx, make_booking(state, now=now, expires_in=3600, updated_ago=10))
    caplog.set_level(logging.ERROR, logger="booking.alerts")

    assert sweep(ctx) == Counter({"stuck": 1, "redriven": 1})

    assert sorted(enqueue.calls) == sorted(
        [(driver[0], stuck.id, driver[1]), (driver[0], quiet.id, driver[1])]
    )
    assert [r.booking_id for r in alerts(caplog, "stuck")] == [stuck.id]  # type: ignore[attr-defined]
    assert any(r.startswith(f"no progress in {state}") for r in reasons(ctx, stuck.id))
    # The note moved updated_at: the next look is redrive_after from now.
    assert score(ctx, stuck.id) == pytest.approx(now.timestamp() + 25, abs=5)
    assert score(ctx, quiet.id) == pytest.approx(now.timestamp() + 25, abs=1)
    assert score(ctx, fresh.id) == pytest.approx(now.timestamp() + 15, abs=1)


def test_awaiting_beneficiary_alerts_once_and_enqueues_nothing(
    ctx: StepContext, enqueue: RecordingEnqueuer, now: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    parked = put(ctx, make_booking(State.AWAITING_BENEFICIARY, now=now, updated_ago=400))
    caplog.set_level(logging.ERROR, logger="booking.alerts")

    assert sweep(ctx) == Counter({"stuck": 1})
    later = now + timedelta(seconds=400)
    ctx.clock = lambda: later
    assert sweep(ctx) == Counter({"waiting": 1})
    assert sweep(ctx) == Counter()  # not claimed again at once: a stuck period later
    assert score(ctx, parked.id) == pytest.approx(later.timestamp() + 300)

    assert enqueue.calls == []
    assert len(alerts(caplog, "stuck")) == 1


def test_documents_are_fetched_when_downloadable_at_comes(
    ctx: StepContext, enqueue: RecordingEnqueuer, now: datetime
) -> None:
    ready = put(ctx, make_booking(State.DOCUMENTS_PENDING, now=now, updated_ago=10,
                                  documents=pending_documents(now, -1)))
    later = put(ctx, make_booking(State.DOCUMENTS_PENDING, now=now, updated_ago=10,
                                  documents=pending_documents(now, 120)))

    assert sweep(ctx) == Counter({"documents": 1})
    assert enqueue.calls == [("fetch_documents", ready.id, {})]
    # The enqueued task re-scores the booking when it runs; until then the sweeper looks
    # again a redrive period later.
    assert score(ctx, ready.id) == pytest.approx(now.timestamp() + 25)
    assert score(ctx, later.id) == pytest.approx(now.timestamp() + 120)
    assert sweep(ctx) == Counter()  # claimed: not enqueued again within the lease


def test_stale_index_entry_is_put_back_at_the_record_deadline(
    ctx: StepContext, enqueue: RecordingEnqueuer, now: datetime
) -> None:
    booking = put(ctx, make_booking(State.AWAITING_PAYMENT, now=now, expires_in=900))
    ctx.redis.zadd(keys.DEADLINES, {booking.id: now.timestamp() - 1})  # a stale hint
    ctx.redis.zadd(keys.DEADLINES, {"bk_gone": now.timestamp() - 1})  # record expired

    assert sweep(ctx) == Counter({"rescheduled": 1, "dropped": 1})
    assert enqueue.calls == []
    assert score(ctx, booking.id) == pytest.approx(now.timestamp() + 840)
    assert score(ctx, "bk_gone") is None


def test_rescore_never_overrides_a_writer_that_came_after_the_claim(
    ctx: StepContext, now: datetime
) -> None:
    booking = put(ctx, make_booking(State.AWAITING_PAYMENT, now=now, expires_in=900))
    ctx.redis.zadd(keys.DEADLINES, {booking.id: now.timestamp() - 1})
    claimed, lease = claim_due(ctx, now, 10)
    assert claimed == [booking.id]
    ctx.redis.zadd(keys.DEADLINES, {booking.id: now.timestamp() + 5})  # a step re-scored it

    assert rescore(ctx, booking.id, lease, now.timestamp() + 840) is False
    assert score(ctx, booking.id) == pytest.approx(now.timestamp() + 5)


def test_sweep_is_bounded_by_batches_and_the_next_run_continues(
    ctx: StepContext, now: datetime
) -> None:
    for _ in range(25):
        put(ctx, make_booking(State.AWAITING_PAYMENT, now=now, expires_in=10))

    assert sweep(ctx, batch_size=10, max_batches=2) == Counter({"cancelled": 20})
    assert sweep(ctx, batch_size=10, max_batches=2) == Counter({"cancelled": 5})
    stats = ctx.redis.hgetall(SWEEP_STATS)
    assert stats["cancelled"] == "25" and stats["runs"] == "2"


def test_two_overlapping_sweeps_act_on_each_due_booking_once(
    redis_client: redis.Redis, redis_url: str, now: datetime
) -> None:
    settings = ops_settings(redis_url)
    seed = make_context(redis_client, settings, RecordingEnqueuer(), now)
    due = [put(seed, make_booking(State.AWAITING_PAYMENT, now=now, expires_in=10)).id
           for _ in range(300)]
    far = [put(seed, make_booking(State.AWAITING_PAYMENT, now=now, expires_in=900)).id
           for _ in range(50)]
    barrier = threading.Barrier(2)
    results: list[tuple[Counter[str], RecordingEnqueuer]] = []
    errors: list[BaseException] = []

    def run() -> None:
        # Each sweep with its own connection and enqueuer, as two worker processes would.
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        enqueue = RecordingEnqueuer()
        ctx = make_context(client, settings, enqueue, now)
        try:
            barrier.wait(5)
            results.append((sweep(ctx, batch_size=7, max_batches=100), enqueue))
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors and len(results) == 2
    (first, first_calls), (second, second_calls) = results
    assert first + second == Counter({"cancelled": len(due)})  # nothing "skipped"
    assert first["cancelled"] > 0 and second["cancelled"] > 0  # both really worked
    first_ids = {call[1] for call in first_calls.calls}
    second_ids = {call[1] for call in second_calls.calls}
    assert first_ids.isdisjoint(second_ids)
    assert first_ids | second_ids == set(due)
    for booking in seed.store.load_many(due):
        assert booking.state == State.CANCELLED
        cancels = [e for e in seed.store.timeline(booking.id) if e["to"] == "cancelled"]
        assert len(cancels) == 1
    assert {b.state for b in seed.store.load_many(far)} == {State.AWAITING_PAYMENT}
