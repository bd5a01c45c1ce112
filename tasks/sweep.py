"""booking.sweep: the beat's periodic pass over due bookings (worker.booking.sweep)."""

from __future__ import annotations

import logging

from celery import Task

from worker.app import app
from worker.booking.sweep import sweep as sweep_step
from worker.booking.task_names import TaskName
from worker.runtime import step_context

log = logging.getLogger("booking.sweep")


# Never retried (max_retries=0): the next beat tick is the retry.
@app.task(name=TaskName.SWEEP, bind=True, acks_late=True, ignore_result=True, max_retries=0)
def sweep(self: Task) -> dict[str, int]:
    """One bounded pass; overlapping runs are safe (claims are atomic). Never retried:
    the next beat tick is the retry."""
    actions = sweep_step(step_context())
    if actions:
        log.info("sweep: %s", dict(actions))
    return dict(actions)
