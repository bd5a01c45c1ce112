"""booking.reserve: hold the tickets at Korus (worker.booking.reserve)."""

from __future__ import annotations

from celery import Task

from tasks.policy import MESSAGE_RETRY_CEILING, run_step
from worker.app import app
from worker.booking.reserve import reserve as reserve_step
from worker.booking.task_names import TaskName


@app.task(name=TaskName.RESERVE, bind=True, acks_late=True, max_retries=MESSAGE_RETRY_CEILING)
def reserve(self: Task, booking_id: str) -> None:
    """Reserve the booking's items; idempotent (see worker.booking.reserve)."""
    run_step(self, reserve_step, booking_id)
