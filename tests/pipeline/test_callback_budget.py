"""Merchant callback retries: CALLBACK_MAX_ATTEMPTS attempts spanning more than 24 h by
default, scheduled in Redis (not broker countdowns), then one callback_failed alert.

`deliver` runs against the real Redis and a real loopback merchant endpoint; the clock is
moved to each scheduled attempt, as the sweeper would send it then.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis

from tests.factories import RecordingEnqueuer
from tests.ops.support import make_booking, make_context, ops_settings
from tests.support.receiver import HttpRecorder, recorder
from worker.booking import keys
from worker.booking.callbacks import callback_delay, deliver, schedule_span
from worker.booking.context import StepContext
from worker.booking.record import utcnow
from worker.booking.states import State
from worker.booking.sweep import sweep
from worker.settings import Settings


@pytest.fixture
def merchant() -> Iterator[HttpRecorder]:
    with recorder() as running:
        yield running


@pytest.fixture
def enqueue() -> RecordingEnqueuer:
    return RecordingEnqueuer()


@pytest.fixture
def ctx(redis_client: redis.Redis, redis_url: str, enqueue: RecordingEnqueuer) -> StepContext:
    # The merchant is a loopback receiver over plain HTTP: exempt it from the SSRF rules.
    settings = ops_settings(
        redis_url,
        callback_timeout_seconds=2,
        callback_allow_http=True,
        callback_allowed_networks=["127.0.0.0/8"],
    )
    return make_context(redis_client, settings, enqueue, utcnow())


def at(ctx: StepContext, moment: datetime) -> None:
    ctx.clock = lambda: moment


def record(ctx: StepContext, booking_id: str, event: str) -> dict[str, object]:
    raw = ctx.redis.hget(keys.callbacks(booking_id), event)
    return dict(json.loads(raw)) if raw else {}


def test_default_schedule_spans_more_than_a_day() -> None:
    defaults = Settings.model_fields
    attempts = defaults["callback_max_attempts"].default
    base = defaults["callback_backoff_base_seconds"].default
    cap = defaults["callback_backoff_cap_seconds"].default
    assert attempts == 8
    assert schedule_span(attempts, base, cap) >= 24 * 3600
    # Every wait is far longer than a broker countdown: they live in Redis.
    assert callback_delay(1, base, cap) > defaults["countdown_max_seconds"].default


def test_a_failing_merchant_gets_max_attempts_then_one_alert(
    ctx: StepContext, merchant: HttpRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    merchant.status_for = lambda n: 503
    start = ctx.now()
    booking = make_booking(State.AWAITING_PAYMENT, now=start, callback_url=merchant.url + "/h")
    assert ctx.store.create(booking, reason="test fixture")
    caplog.set_level(logging.ERROR, logger="booking.alerts")
    event = "booking.reserved"
    attempts = ctx.settings.callback_max_attempts

    moment = start
    for n in range(1, attempts + 1):
        at(ctx, moment)
        assert deliver(ctx, booking.id, event, task_id=f"t{n}") in ("retry scheduled", "failed")
        assert len(merchant.requests) == n
        state = record(ctx, booking.id, event)
        if n < attempts:
            assert state["status"] == "retry" and state["attempts"] == n
            next_at = float(str(state["next_at"]))
            # The retry lives in the callbacks-due index, not in a broker countdown.
            due = ctx.redis.zscore(keys.CALLBACKS_DUE, f"{booking.id}|{event}")
            assert due == pytest.approx(next_at)
            early = deliver(ctx, booking.id, event, task_id="early")  # a duplicate message
            assert early == "not due yet" and len(merchant.requests) == n
            moment = datetime.fromtimestamp(next_at, start.tzinfo)

    assert record(ctx, booking.id, event)["status"] == "failed"
    assert (moment - start) >= timedelta(hours=24)
    assert ctx.redis.zscore(keys.CALLBACKS_DUE, f"{booking.id}|{event}") is None
    kinds = [getattr(r, "alert_kind", None) for r in caplog.records]
    assert kinds == ["callback_failed"]
    assert deliver(ctx, booking.id, event, task_id="late") == "already failed"
    assert len(merchant.requests) == attempts


def test_a_callback_being_sent_is_not_sent_again_until_its_lease_lapses(
    ctx: StepContext, merchant: HttpRecorder
) -> None:
    start = ctx.now()
    booking = make_booking(State.AWAITING_PAYMENT, now=start, callback_url=merchant.url + "/h")
    assert ctx.store.create(booking, reason="test fixture")
    lease_until = start.timestamp() + 30
    sending = json.dumps({"status": "sending", "attempts": 1, "task_id": "other",
                          "owner": None, "lease_until": lease_until})
    ctx.redis.hset(keys.callbacks(booking.id), "booking.reserved", sending)

    assert deliver(ctx, booking.id, "booking.reserved", task_id="dup") == (
        "being sent by another task"
    )
    assert merchant.requests == []
    at(ctx, start + timedelta(seconds=31))  # the sender died: its lease lapsed
    assert deliver(ctx, booking.id, "booking.reserved", task_id="dup") == "delivered"
    assert record(ctx, booking.id, "booking.reserved") == {"status": "delivered", "attempts": 2}


def test_the_sweeper_sends_due_callbacks_again(
    ctx: StepContext, enqueue: RecordingEnqueuer
) -> None:
    now = ctx.now()
    ctx.store.callback_expected("bk_lost", "booking.completed", now.timestamp() - 1)
    ctx.store.callback_expected("bk_later", "booking.completed", now.timestamp() + 60)

    actions = sweep(ctx)

    assert actions["callbacks"] == 1
    assert enqueue.calls == [("notify", "bk_lost", {"event": "booking.completed"})]
