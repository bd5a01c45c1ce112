"""booking.create_order: order the reservations at Korus (worker.booking.ordering)."""

from __future__ import annotations

from celery import Task

from tasks.policy import MESSAGE_RETRY_CEILING, run_step
from worker.app import app
from worker.booking.ordering import create_order as create_order_step
from worker.booking.task_names import TaskName


@app.task(
    name=TaskName.CREATE_ORDER, bind=True, acks_late=True, max_retries=MESSAGE_RETRY_CEILING
)
def create_order(self: Task, booking_id: str) -> None:
    """Order the reservations exactly once (worker.booking.ordering)."""
    run_step(self, create_order_step, booking_id)
