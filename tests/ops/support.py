"""Helpers of the operations tests: settings, a step context on real Redis, bookings
with the operations ids. (The HTTP recorder is in tests/support/receiver.py, the
recording enqueuer in tests/factories.py, the bounded wait in tests/support/waits.py.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from tests.factories import booking_in
from worker.booking.context import StepContext
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.effects import Enqueuer
from worker.booking.record import Booking, TicketDocument, utcnow
from worker.booking.states import State
from worker.booking.store import BookingStore
from worker.settings import Settings


def log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- domain: context, bookings -----------------------------------------------------


def ops_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "korus_base_url": "http://127.0.0.1:9",
        "korus_token": "placeholder",
        "cancel_margin_seconds": 60,
        "stuck_after_seconds": 300,
    }
    values.update(overrides)
    return Settings(**values)


def make_context(client: redis.Redis, settings: Settings, enqueue: Enqueuer,
                 now: datetime | None = None) -> StepContext:
    policy = DeadlinePolicy(
        cancel_margin=timedelta(seconds=settings.cancel_margin_seconds),
        stuck_after=timedelta(seconds=settings.stuck_after_seconds),
        redrive_after=timedelta(seconds=settings.redrive_after_seconds),
        beneficiary_wait=timedelta(seconds=settings.beneficiary_wait_seconds),
    )
    store = BookingStore(client, retention_seconds=3600, deadline_policy=policy)

    def no_korus() -> Any:
        raise AssertionError("the sweep must not call Korus")

    clock = (lambda: now) if now is not None else utcnow
    return StepContext(settings=settings, redis=client, store=store, enqueue=enqueue,
                       korus_factory=no_korus, clock=clock)


def make_booking(state: State, *, now: datetime, **options: Any) -> Booking:
    """`booking_in` with the operations tests' ids (`bk_ops...`)."""
    return booking_in(state, now=now, prefix="bk_ops", **options)


def pending_documents(now: datetime, downloadable_in: float) -> list[TicketDocument]:
    return [TicketDocument(order_id="o1", document_id="d1",
                           downloadable_at=now + timedelta(seconds=downloadable_in))]
