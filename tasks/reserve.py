"""booking.reserve: hold the tickets at Korus (worker.booking.reserve)."""

from __future__ import annotations

from typing import Any

from celery import Task

from tasks.policy import run_step
from worker.app import app
from worker.booking.reserve import reserve as reserve_step


@app.task(name="booking.reserve", bind=True, acks_late=True)
def reserve(self: Task, booking_id: str) -> Any:
    """Reserve the booking's items; idempotent (see worker.booking.reserve)."""
    return run_step(self, reserve_step, booking_id)
