"""The retry policy's budgets, through real Celery tasks run eagerly (`apply`: Celery's
own retry path, the retries run at once) against the real Redis.

A step that keeps failing is retried exactly its budget, counted in the booking record
(a retry the sweeper sends continues the count); then the booking is parked with its
alert, never acknowledged and forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from celery import Task

from tasks.policy import MESSAGE_RETRY_CEILING, run_step
from tests.ops.support import make_booking
from worker.app import app
from worker.booking.context import StepContext
from worker.booking.states import State
from worker.runtime import step_context

calls: list[str] = []
raises: dict[str, BaseException] = {}


def failing_step(ctx: StepContext, booking_id: str, task_id: str | None) -> None:
    calls.append(booking_id)
    raise raises[booking_id]


def failing(self: Task, booking_id: str) -> Any:
    return run_step(self, failing_step, booking_id)


_tasks: dict[str, Task] = {}


def failing_task() -> Task:
    """Registered on first use (the app reads its settings when a task is declared)."""
    if "task" not in _tasks:
        _tasks["task"] = app.task(
            bind=True, name="test.failing_step", max_retries=MESSAGE_RETRY_CEILING
        )(failing)
    return _tasks["task"]


@pytest.fixture
def paid_booking(redis_client: redis.Redis) -> Callable[[BaseException], str]:
    ctx = step_context()
    calls.clear()

    def make(error: BaseException) -> str:
        booking = make_booking(State.PAID, now=datetime.now(UTC))
        assert ctx.store.create(booking, reason="test fixture")
        raises[booking.id] = error
        return booking.id

    return make


def alert_kinds(caplog: pytest.LogCaptureFixture) -> list[str | None]:
    return [getattr(r, "alert_kind", None) for r in caplog.records if r.name == "booking.alerts"]


def run_until_parked(booking_id: str, limit: int = 40) -> None:
    """Apply the task; when it leaves a retry in Redis (`retry_at`), send it again the way
    the sweeper would, until the booking is parked (bounded)."""
    store = step_context().store
    for _ in range(limit):
        failing_task().apply(args=[booking_id])
        booking = store.load(booking_id)
        assert booking is not None
        if {"retries_exhausted", "step_failed"} & set(booking.alerts):
            return
    raise AssertionError("never parked")


def test_unexpected_exceptions_are_retried_their_budget_then_the_booking_parks_and_alerts(
    paid_booking: Callable[[BaseException], str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = step_context().settings
    booking_id = paid_booking(ValueError("a bug"))
    caplog.set_level(logging.ERROR, logger="booking.alerts")

    run_until_parked(booking_id)

    assert len(calls) == settings.task_max_unexpected_retries + 1
    booking = step_context().store.load(booking_id)
    assert booking is not None and booking.state == State.PAID  # money and hold kept
    assert booking.alerts == ["step_failed"] and booking.retry_at is not None
    assert alert_kinds(caplog) == ["step_failed"]
    reasons = [e["reason"] for e in step_context().store.timeline(booking_id)]
    assert any("step_failed after 4 attempts" in r for r in reasons), reasons


def test_a_redis_error_in_a_step_is_transient_and_retried_its_full_budget(
    paid_booking: Callable[[BaseException], str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = step_context().settings
    booking_id = paid_booking(redis.exceptions.ConnectionError("Redis went away"))
    caplog.set_level(logging.ERROR, logger="booking.alerts")

    run_until_parked(booking_id, limit=60)

    assert len(calls) == settings.task_max_retries + 1
    booking = step_context().store.load(booking_id)
    assert booking is not None and booking.alerts == ["retries_exhausted"]
    assert alert_kinds(caplog) == ["retries_exhausted"]


def test_every_booking_task_names_its_retry_budget() -> None:
    """`max_retries=None` on a task means Celery's default of 3: each names its own."""
    import tasks.callbacks
    import tasks.documents
    import tasks.ordering
    import tasks.payment
    import tasks.reserve
    import tasks.sweep

    named = {
        tasks.reserve.reserve: MESSAGE_RETRY_CEILING,
        tasks.payment.payment_succeeded: MESSAGE_RETRY_CEILING,
        tasks.ordering.create_order: MESSAGE_RETRY_CEILING,
        tasks.documents.fetch_documents: MESSAGE_RETRY_CEILING,
        tasks.callbacks.notify: MESSAGE_RETRY_CEILING,
        tasks.sweep.sweep: 0,
    }
    for task, budget in named.items():
        assert task.max_retries == budget, task.name
