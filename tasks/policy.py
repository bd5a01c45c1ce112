"""The one retry policy of every booking task.

Only errors classified as transient are retried (KorusTransientError and its kinds,
a lost compare-and-set race, a merchant callback failure), with capped exponential
backoff and full jitter, never sooner than Korus's Retry-After. `RetryLater` (a step that
waits for a lease or for documents) retries on its own countdown. When the count runs
out the booking keeps its state; the alert and the sweeper's stuck detection make it
visible and drive it again. Everything else is a bug or a permanent refusal: it is not
retried, it is raised to Sentry.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from celery import Task

from worker.alerts import alert
from worker.booking.callbacks import CallbackFailedError
from worker.booking.context import RetryLater
from worker.booking.store import ConcurrentUpdateError
from worker.korus.errors import KorusAuthError, KorusTransientError
from worker.runtime import step_context

log = logging.getLogger("booking.tasks")

BASE_DELAY = 2.0
# Waits (RetryLater) are bounded separately: 200 waits of at most the cap is far above any
# lease or document delay a booking sees, and still ends.
MAX_WAITS = 200


def backoff(retries: int, cap: float, retry_after: float | None = None) -> float:
    """Capped exponential backoff with full jitter, at least `retry_after`."""
    ceiling = min(cap, BASE_DELAY * (2**retries))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def run_step(
    task: Task, step: Callable[..., Any], booking_id: str, *args: Any, **kwargs: Any
) -> Any:
    """Run a domain step for a booking under the retry policy above."""
    ctx = step_context()
    settings = ctx.settings
    task_id = task.request.id
    try:
        return step(ctx, booking_id, *args, task_id=task_id, **kwargs)
    except RetryLater as wait:
        if task.request.retries >= MAX_WAITS:
            return give_up(task, booking_id, f"still waiting after {MAX_WAITS} waits: {wait}")
        raise task.retry(countdown=wait.countdown, max_retries=None) from None
    except (
        KorusTransientError,
        KorusAuthError,
        ConcurrentUpdateError,
        CallbackFailedError,
    ) as error:
        retries = task.request.retries
        if isinstance(error, KorusAuthError):
            # Not the booking's fault: credentials or the token endpoint. Alert, keep trying.
            alert("korus_auth", booking_id, str(error), task=task.name)
        if retries >= settings.task_max_retries:
            return give_up(task, booking_id, f"gave up after {retries + 1} attempts: {error}")
        retry_after = getattr(error, "retry_after", None)
        countdown = backoff(retries, settings.retry_backoff_cap_seconds, retry_after)
        log.warning(
            "%s booking=%s transient failure (attempt %d): %s",
            task.name,
            booking_id,
            retries + 1,
            error,
        )
        # The count is checked above: Celery, given `exc`, would re-raise the error
        # itself when its own limit ran out, and the alert below would never be sent.
        raise task.retry(exc=error, countdown=countdown, max_retries=None) from None


def give_up(task: Task, booking_id: str, why: str) -> None:
    """The bounded count ran out: the booking keeps its state, an operator is alerted,
    and the sweeper's stuck detection drives it again later."""
    alert("retries_exhausted", booking_id, f"{task.name} {why}", task=task.name)
    return None
