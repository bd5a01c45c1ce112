"""What a booking step needs from the outside world, passed in explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ParamSpec, Protocol

import redis

from worker.booking.effects import Enqueuer
from worker.booking.record import utcnow
from worker.booking.store import BookingStore
from worker.korus.client import KorusClient
from worker.settings import Settings


class RetryLater(Exception):
    """The step cannot finish now but will be able to later (not an error).

    Raised by domain steps; the Celery task turns it into `self.retry(countdown=...)`.
    """

    def __init__(self, reason: str, countdown: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.countdown = countdown


@dataclass
class StepContext:
    settings: Settings
    redis: redis.Redis
    store: BookingStore
    enqueue: Enqueuer
    korus_factory: Callable[[], KorusClient]
    clock: Callable[[], datetime] = field(default=utcnow)
    _korus: KorusClient | None = None
    # Who holds the claims this context takes (host:pid with a liveness key), or None
    # (tests and tools calling steps inline: only the claim's lease counts).
    owner: Callable[[], str | None] = field(default=lambda: None)

    @property
    def korus(self) -> KorusClient:
        if self._korus is None:
            self._korus = self.korus_factory()
        return self._korus

    def now(self) -> datetime:
        return self.clock()

    def owner_alive(self, owner: str | None) -> bool:
        """Whether a claim's owner still runs (an owner-less claim relies on its lease)."""
        return owner is None or owner in self.store.alive([owner])


P = ParamSpec("P")


class Step(Protocol[P]):
    """A domain step as `tasks.policy.run_step` runs it:
    `step(ctx, booking_id, task_id, *args, **kwargs)`.

    `task_id` is the Celery task id (None when a test or tool calls the step inline);
    `args` and `kwargs` are the rest of the task's message, checked by mypy against the
    step: `run_step(task, payment_succeeded, booking_id, event_id)`,
    `run_step(task, fetch_documents, booking_id, refresh=refresh)`. A step returns
    nothing: its outcome is in the record; `RetryLater` and errors go to the retry policy.
    """

    def __call__(
        self,
        ctx: StepContext,
        booking_id: str,
        task_id: str | None,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> None: ...
