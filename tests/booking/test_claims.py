"""Claims, the listing index and every state's way out (issue 9, findings 3, 5 and 6).

Real Redis; the reserve step talks to the Korus sandbox over loopback HTTP.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from korus_sandbox.admin import SandboxAdmin
from tests.factories import RecordingEnqueuer
from tests.ops.support import make_booking, make_context, ops_settings
from tests.support.booking import request_for
from worker.booking import keys
from worker.booking.context import StepContext
from worker.booking.deadlines import next_deadline
from worker.booking.effects import send_driver
from worker.booking.record import Booking, utcnow
from worker.booking.requests import PaymentEvent
from worker.booking.reserve import reserve
from worker.booking.service import BookingService
from worker.booking.states import CLOSED, DRIVER, FINAL, State
from worker.booking.store import Change
from worker.booking.sweep import sweep
from worker.korus.auth import SharedTokenProvider
from worker.korus.client import KorusClient

RESERVE = "POST /v1/booking/reservations/_bulk"


@pytest.fixture
def enqueue() -> RecordingEnqueuer:
    return RecordingEnqueuer()


@pytest.fixture
def ctx(redis_client: redis.Redis, redis_url: str, enqueue: RecordingEnqueuer,
        sandbox: Any) -> Iterator[StepContext]:
    settings = ops_settings(redis_url, korus_base_url=sandbox.url)
    context = make_context(redis_client, settings, enqueue)
    tokens = SharedTokenProvider(redis_client, sandbox.token_url, "sandbox", "sandbox")
    korus = KorusClient(sandbox.url, tokens, connect_timeout=2, read_timeout=5)
    context.korus_factory = lambda: korus
    yield context


@pytest.fixture
def service(ctx: StepContext, enqueue: RecordingEnqueuer) -> BookingService:
    return BookingService(ctx.store, enqueue, event_ttl_seconds=600, policy="all_or_nothing")


def test_a_duplicate_reserve_message_never_makes_a_second_hold(
    ctx: StepContext, service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    """Finding 5: `booking.reserve` had no claim; a second copy of the message arriving
    while the first one's call was in flight reserved again."""
    admin.reset()
    booking = service.start_booking(request_for(catalog, "Day Pass")).booking
    admin.set_fault(RESERVE, latency_ms=1500)
    first = threading.Thread(target=lambda: reserve(ctx, booking.id, task_id="first"))
    first.start()
    for _ in range(100):  # the first copy holds the claim and its call is in flight
        current = ctx.store.load(booking.id)
        if current is not None and current.claim is not None:
            break
        threading.Event().wait(0.02)

    reserve(ctx, booking.id, task_id="duplicate")  # the broker delivered it twice
    first.join(10)
    reserve(ctx, booking.id, task_id="late duplicate")

    admin.clear_faults()
    assert admin.calls()[RESERVE] == 1
    held = ctx.store.load(booking.id)
    assert held is not None and held.state == State.AWAITING_PAYMENT
    assert len(held.reservations) == 1


def test_a_reserve_claim_whose_worker_died_is_taken_over_after_its_lease(
    ctx: StepContext, service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    admin.reset()
    booking = service.start_booking(request_for(catalog, "Day Pass")).booking
    dead = utcnow() - timedelta(hours=1)

    def died(b: Booking) -> Change:  # a claim taken an hour ago by a worker since killed
        from worker.booking.record import StepClaim

        b.state = State.RESERVING
        b.claim = StepClaim(step="reserve", number=1, task_id="gone", owner=None,
                            started_at=dead, lease_until=dead + timedelta(seconds=60))
        return Change(b, "claimed by a worker that then died")

    ctx.store.update(booking.id, died)
    reserve(ctx, booking.id, task_id="redriven")

    held = ctx.store.load(booking.id)
    assert held is not None and held.state == State.AWAITING_PAYMENT
    reasons = [e["reason"] for e in ctx.store.timeline(booking.id)]
    assert any("reserve claim 1 lapsed" in r for r in reasons), reasons


def test_the_listing_index_is_written_after_the_compare_and_set(ctx: StepContext) -> None:
    """Finding 6: the index was written ahead of the compare-and-set; a writer that lost
    the race left the booking listed under a state it never reached."""
    booking = make_booking(State.AWAITING_PAYMENT, now=utcnow())
    assert ctx.store.create(booking, reason="fixture")
    stale = ctx.store.load(booking.id)
    assert stale is not None

    def cancel(b: Booking) -> Change:
        b.state = State.CANCELLED
        return Change(b, "cancel")

    def pay(b: Booking) -> Change:
        b.state = State.PAID
        return Change(b, "paid")

    assert ctx.store.update(booking.id, cancel).changed
    # A writer holding the stale record loses its compare-and-set (attempts=1: no reload).
    with pytest.raises(Exception, match="too many concurrent updates"):
        ctx.store.update(booking.id, pay, current=stale, attempts=1)

    listed = {s: ctx.redis.zscore(keys.by_state(s.value), booking.id) for s in State}
    assert {s for s, score in listed.items() if score is not None} == {State.CANCELLED}


def test_the_sweeper_repairs_a_missing_listing_entry(ctx: StepContext) -> None:
    booking = make_booking(State.PAID, now=utcnow(), updated_ago=60)
    assert ctx.store.create(booking, reason="fixture")
    ctx.redis.zrem(keys.by_state("paid"), booking.id)  # the writer died before indexing

    sweep(ctx)

    assert ctx.redis.zscore(keys.by_state("paid"), booking.id) is not None


@pytest.mark.parametrize("state", [s for s in State if s not in CLOSED])
def test_every_open_state_has_a_deadline(ctx: StepContext, state: State) -> None:
    """Every non-final state has a timeout and a way out (the sweeper looks at it)."""
    booking = make_booking(state, now=utcnow())
    assert next_deadline(booking, ctx.store.deadline_policy) is not None


def test_awaiting_beneficiary_ends_in_refund_required_after_its_wait(
    ctx: StepContext, enqueue: RecordingEnqueuer
) -> None:
    """Finding 6: awaiting_beneficiary records never expired."""
    waited = ctx.settings.beneficiary_wait_seconds + 1
    booking = make_booking(State.AWAITING_BENEFICIARY, now=utcnow(), updated_ago=waited)
    assert ctx.store.create(booking, reason="fixture")

    assert sweep(ctx)["beneficiary_timeout"] == 1

    after = ctx.store.load(booking.id)
    assert after is not None and after.state == State.REFUND_REQUIRED and after.state in FINAL
    assert ("notify", booking.id, {"event": "booking.refund_required"}) in enqueue.calls
    assert ctx.redis.ttl(keys.booking(booking.id)) > 0  # the record now expires


def test_the_sweeper_applies_a_received_payment_before_it_closes_the_hold(
    ctx: StepContext, service: BookingService, enqueue: RecordingEnqueuer
) -> None:
    """Finding 3: the payment message was lost (a killed worker, an error acknowledged);
    the sweeper cancelled the booking and the money was kept with no refund alert."""
    booking = make_booking(State.AWAITING_PAYMENT, now=utcnow(), expires_in=30)
    assert ctx.store.create(booking, reason="fixture")
    outcome = service.record_payment(PaymentEvent(
        provider="test", event_id="evt_lost", kind="succeeded", booking_id=booking.id,
        payment_id="pi_lost", amount_minor=4000, currency="eur"))
    assert outcome == "enqueued"
    enqueue.calls.clear()  # ... and the message is lost

    actions = sweep(ctx)

    after = ctx.store.load(booking.id)
    assert after is not None and after.state == State.PAID, ctx.store.timeline(booking.id)
    assert actions["payment_applied"] == 1 and "cancelled" not in actions
    assert ctx.store.pending_payment_events([booking.id]) == {}
    assert {c[1] for c in enqueue.named("create_order")} == {booking.id}


def test_a_pending_payment_makes_the_booking_due_within_a_redrive_period(
    ctx: StepContext, service: BookingService
) -> None:
    booking = make_booking(State.AWAITING_PAYMENT, now=utcnow(), expires_in=900)
    assert ctx.store.create(booking, reason="fixture")
    service.record_payment(PaymentEvent(
        provider="test", event_id="evt_soon", kind="succeeded", booking_id=booking.id,
        payment_id="pi_soon", amount_minor=4000, currency="eur"))
    score = ctx.redis.zscore(keys.DEADLINES, booking.id)
    assert score is not None and score <= utcnow().timestamp() + 25 + 1


def test_the_driver_map_covers_service_retry(ctx: StepContext, service: BookingService,
                                             enqueue: RecordingEnqueuer) -> None:
    for state, task in DRIVER.items():
        booking = make_booking(state, now=utcnow())
        assert ctx.store.create(booking, reason="fixture")
        assert service.retry(booking.id) == task
        assert send_driver(booking.id, state, enqueue) == task
