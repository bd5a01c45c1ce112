"""What a booking step needs from the outside world, passed in explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

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
