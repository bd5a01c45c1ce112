"""booking.notify: signed merchant callbacks (worker.booking.callbacks)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from tasks.policy import MESSAGE_RETRY_CEILING
from worker.app import app
from worker.booking.callbacks import deliver
from worker.booking.context import RetryLater
from worker.booking.task_names import TaskName
from worker.runtime import step_context

log = logging.getLogger("booking.callbacks")


# Never retried by Celery (its retries and backoff live in the delivery record and the
# callbacks-due index: CALLBACK_MAX_ATTEMPTS, worker.booking.callbacks); the ceiling is
# named all the same.
@app.task(name=TaskName.NOTIFY, bind=True, acks_late=True, max_retries=MESSAGE_RETRY_CEILING)
def notify(self: Task, booking_id: str, event_type: str) -> Any:
    """Make one delivery attempt; failures are scheduled again and never touch the booking."""
    try:
        return deliver(step_context(), booking_id, event_type, task_id=self.request.id)
    except RetryLater as wait:
        raise self.retry(countdown=wait.countdown, max_retries=self.max_retries) from None
    except Exception:
        log.exception("callback %s booking=%s: attempt failed unexpectedly", event_type, booking_id)
        return None
