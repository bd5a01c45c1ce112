"""booking.notify: signed merchant callbacks (worker.booking.callbacks)."""

from __future__ import annotations

from typing import Any

from celery import Task

from tasks.policy import run_step
from worker.app import app
from worker.booking.callbacks import deliver
from worker.booking.context import StepContext


def _deliver(ctx: StepContext, booking_id: str, event_type: str, task_id: str | None) -> str:
    return deliver(ctx, booking_id, event_type)


@app.task(name="booking.notify", bind=True, acks_late=True)
def notify(self: Task, booking_id: str, event_type: str) -> Any:
    """Deliver one callback once; failures retry with backoff and never touch the booking."""
    return run_step(self, _deliver, booking_id, event_type)
