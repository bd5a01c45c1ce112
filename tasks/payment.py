"""booking.payment_succeeded: apply a recorded payment event (worker.booking.payment)."""

from __future__ import annotations

from celery import Task

from tasks.policy import MESSAGE_RETRY_CEILING, run_step
from worker.app import app
from worker.booking.payment import payment_succeeded as payment_step
from worker.booking.task_names import TaskName


@app.task(
    name=TaskName.PAYMENT_SUCCEEDED, bind=True, acks_late=True, max_retries=MESSAGE_RETRY_CEILING
)
def payment_succeeded(self: Task, booking_id: str, event_id: str) -> None:
    """Apply a recorded payment event; deduped by payment id (worker.booking.payment)."""
    run_step(self, payment_step, booking_id, event_id)
