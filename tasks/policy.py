"""The one retry policy of every booking task.

Budgets are explicit and mean what the settings say:
- transient errors (Korus 5xx/429/timeouts/auth, Redis errors, a lost compare-and-set
  race): `TASK_MAX_RETRIES` retries, counted in the booking record (worker.booking.
  failures), with capped exponential backoff and full jitter, never sooner than Korus's
  Retry-After;
- unexpected exceptions (a bug, a malformed answer): `TASK_MAX_UNEXPECTED_RETRIES`
  retries, likewise;
- past a budget the booking is parked in an alerting state (`retries_exhausted` or
  `step_failed` alert, `retry_at` a stuck period later): never acknowledged and
  forgotten.
A backoff up to `COUNTDOWN_MAX_SECONDS` is a broker countdown; a longer one is
`retry_at` in the record, and the sweeper drives the step then, so no long countdown
sits in the broker and the visibility timeout can stay short.

Celery's own count: `task.retry(max_retries=None)` means "the task's `max_retries`",
whose Celery default is 3. Every task here names `max_retries=MESSAGE_RETRY_CEILING` and
every `retry` call passes it explicitly; the budgets above, counted in the record, always
end first. The ceiling only bounds one message that keeps waiting (RetryLater).
Merchant callbacks have their own budget (`CALLBACK_MAX_ATTEMPTS`, worker.booking.
callbacks), scheduled in Redis.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import ParamSpec

import redis
from celery import Task

from worker.alerts import alert
from worker.booking.context import RetryLater, Step, StepContext
from worker.booking.failures import RETRIES_EXHAUSTED, STEP_FAILED, count_failure, parked
from worker.booking.store import ConcurrentUpdateError
from worker.korus.errors import KorusAuthError, KorusTransientError
from worker.runtime import step_context

log = logging.getLogger("booking.tasks")

BASE_DELAY = 2.0
# Celery's per-message retry limit, named on every task: far above any budget below.
MESSAGE_RETRY_CEILING = 200
# Short waits (RetryLater) of one message are bounded by the ceiling as well.
MAX_WAITS = MESSAGE_RETRY_CEILING

TRANSIENT: tuple[type[BaseException], ...] = (
    KorusTransientError,
    KorusAuthError,
    ConcurrentUpdateError,
    redis.exceptions.RedisError,
)


def backoff(retries: int, cap: float, retry_after: float | None = None) -> float:
    """Capped exponential backoff with full jitter, at least `retry_after`."""
    ceiling = min(cap, BASE_DELAY * (2**retries))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


P = ParamSpec("P")


def run_step(
    task: Task, step: Step[P], booking_id: str, *args: P.args, **kwargs: P.kwargs
) -> None:
    """Run a domain step for a booking under the retry policy above; `args` and `kwargs`
    are the step's own (mypy checks them against it)."""
    ctx = step_context()
    try:
        step(ctx, booking_id, task.request.id, *args, **kwargs)
    except RetryLater as wait:
        if wait.countdown <= ctx.settings.countdown_max_seconds:
            if task.request.retries >= MAX_WAITS:
                return give_up(task, booking_id, f"still waiting after {MAX_WAITS} waits: {wait}")
            raise task.retry(countdown=wait.countdown, max_retries=task.max_retries) from None
        # A longer wait lives in Redis: the sweeper drives the booking at its deadline
        # (a claim's lease re-check, documents' downloadableAt), at the latest when the
        # wait ends.
        due = ctx.now().timestamp() + wait.countdown
        ctx.store.set_deadline(booking_id, due)
        log.info(
            "%s booking=%s waits %.0fs in Redis: %s", task.name, booking_id, wait.countdown, wait
        )
        return None
    except TRANSIENT as error:
        if isinstance(error, KorusAuthError):
            # Not the booking's fault: credentials or the token endpoint. Alert, keep trying.
            alert("korus_auth", booking_id, str(error), task=task.name)
        return failed(task, ctx, booking_id, error, unexpected=False)
    except Exception as error:
        log.exception("%s booking=%s raised unexpected %s", task.name, booking_id, error)
        return failed(task, ctx, booking_id, error, unexpected=True)


def failed(
    task: Task, ctx: StepContext, booking_id: str, error: BaseException, *, unexpected: bool
) -> None:
    """Count the failure in the record; retry (countdown or Redis) or park with an alert."""
    settings = ctx.settings
    budget = settings.task_max_unexpected_retries if unexpected else settings.task_max_retries
    retry_after = getattr(error, "retry_after", None)
    cap = settings.retry_backoff_cap_seconds
    text = f"{type(error).__name__}: {error}"[:300]
    try:
        result = ctx.store.update(
            booking_id,
            lambda b: count_failure(
                b,
                task=task.name,
                error=text,
                unexpected=unexpected,
                budget=budget,
                now=ctx.now(),
                delay_for=lambda n: backoff(n - 1, cap, retry_after),
                broker_max=settings.countdown_max_seconds,
                park_for=timedelta(seconds=settings.stuck_after_seconds),
            ),
            task_id=task.request.id,
        )
    except (redis.exceptions.RedisError, ConcurrentUpdateError) as store_error:
        # The record cannot be written (Redis down): the message's own count decides.
        retries = task.request.retries
        if retries >= budget:
            return give_up(task, booking_id, f"gave up after {retries + 1} attempts: {error}")
        log.warning("%s booking=%s failure not recorded: %s", task.name, booking_id, store_error)
        countdown = backoff(retries, cap, retry_after)
        raise task.retry(countdown=countdown, max_retries=task.max_retries) from None
    booking = result.booking
    if booking is None or not result.changed:
        return None  # unknown or closed booking: nothing left to retry
    if parked(booking, unexpected, budget):
        kind = STEP_FAILED if unexpected else RETRIES_EXHAUSTED
        alert(kind, booking_id, f"{task.name} failed {budget + 1} times: {text}", task=task.name)
        return None
    if booking.retry_at is not None:
        # The booking's deadline may be set by its state alone (awaiting_payment with a
        # payment to apply): make sure the sweeper comes at retry_at.
        ctx.store.set_deadline(booking_id, booking.retry_at.timestamp())
        log.warning(
            "%s booking=%s %s; retried from Redis at %s",
            task.name,
            booking_id,
            text,
            booking.retry_at,
        )
        return None  # the sweeper drives it at retry_at
    count = booking.unexpected_failures if unexpected else booking.step_failures
    countdown = backoff(count - 1, cap, retry_after)
    countdown = min(countdown, settings.countdown_max_seconds) if retry_after is None else countdown
    log.warning("%s booking=%s attempt %d failed: %s", task.name, booking_id, count, text)
    raise task.retry(countdown=countdown, max_retries=task.max_retries) from None


def give_up(task: Task, booking_id: str, why: str) -> None:
    """The bounded count ran out where the record could not say so: alert; the sweeper
    drives the booking again (its state is a driven one with a deadline)."""
    alert(RETRIES_EXHAUSTED, booking_id, f"{task.name} {why}", task=task.name)
    return None
