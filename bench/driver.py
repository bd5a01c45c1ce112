"""Drives bookings through a running deployment, as the merchant API and the payment
webhooks do (`BookingService.start_booking`, `record_payment`), and times them.

The driver watches the state indexes (a ZMSCORE or two per poll, every 50 ms), pays each
booking as soon as it is `awaiting_payment`, and takes the completion time from the
record's own `updated_at`, so the polling interval does not blur latencies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis
from celery import Celery

from worker.booking import keys
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.requests import BookingRequest, PaymentEvent
from worker.booking.service import BookingService
from worker.booking.states import CLOSED, State
from worker.booking.store import BookingStore
from worker.enqueue import CeleryEnqueuer

POLL_SECONDS = 0.05


def celery_app(broker_url: str, name: str = "bench-driver") -> Celery:
    """A Celery app with the project's queues and routes, sending to `broker_url`."""
    app = Celery(name)
    app.config_from_object("worker.celeryconfig")
    app.conf.broker_url = broker_url
    return app


def day_pass_request(catalog: dict[str, Any], n: int, product: str = "Day Pass") -> BookingRequest:
    entry = catalog[product]
    session: dict[str, Any] = {"ticket": entry["tickets"][0]}
    if entry.get("sessions"):
        session["session"] = entry["sessions"][0]
    return BookingRequest.model_validate({
        "externalReference": f"BENCH-{n:06d}",
        "items": [{"offer": entry["offer"], "quantity": 1, "ticketSessions": [session]}],
        "customer": {"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com"},
    })


@dataclass
class Run:
    """What happened to the bookings of one batch."""

    created: dict[str, float] = field(default_factory=dict)   # id -> monotonic-ish epoch
    accepted: dict[str, float] = field(default_factory=dict)  # id -> payment accepted (epoch)
    finished: dict[str, float] = field(default_factory=dict)  # id -> updated_at (epoch)
    states: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    ended: float = 0.0
    timed_out: bool = False

    @property
    def completed(self) -> int:
        return sum(1 for s in self.states.values() if s == State.COMPLETED.value)

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def rate(self) -> float:
        """Completed bookings per second, from the first creation to the last completion."""
        if not self.finished:
            return 0.0
        return self.completed / max(1e-9, max(self.finished.values()) - self.started)

    def latencies(self) -> list[float]:
        """Seconds from payment accepted to completed, per completed booking."""
        return [self.finished[i] - self.accepted[i] for i in self.finished
                if i in self.accepted and self.states.get(i) == State.COMPLETED.value]


class Driver:
    def __init__(self, redis_url: str, broker_url: str, catalog: dict[str, Any]) -> None:
        # What the web front does (counted as work per booking) and what only the driver
        # does to watch the bookings (polling; named apart so it can be left out).
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True,
                                          client_name="bench-web")
        self.poll = redis.Redis.from_url(redis_url, decode_responses=True,
                                         client_name="bench-poll")
        self.app = celery_app(broker_url)
        policy = DeadlinePolicy(timedelta(seconds=60), timedelta(seconds=300))
        self.store = BookingStore(self.redis, retention_seconds=3600, deadline_policy=policy)
        self.poll_store = BookingStore(self.poll, retention_seconds=3600, deadline_policy=policy)
        self.service = BookingService(self.store, CeleryEnqueuer(self.app),
                                      event_ttl_seconds=3600, policy="all_or_nothing")
        self.catalog = catalog
        self.counter = 0
        self._last_full_check = 0.0
        self.poll_round_trips = 0  # of the `bench-poll` connection, to subtract from totals

    def close(self) -> None:
        self.redis.close()
        self.poll.close()

    def _create(self, run: Run, product: str) -> None:
        self.counter += 1
        booking = self.service.start_booking(day_pass_request(self.catalog, self.counter,
                                                              product)).booking
        run.created[booking.id] = time.time()

    def batch(self, count: int, *, timeout: float, product: str = "Day Pass") -> Run:
        """Create `count` bookings at once, pay each when held, wait until all close."""
        return self.open_loop(count, rate=None, timeout=timeout, product=product)

    def open_loop(self, count: int, *, rate: float | None, timeout: float,
                  product: str = "Day Pass") -> Run:
        """Create `count` bookings at `rate` per second (None: all at once), paying each
        as soon as it is held; returns when all are closed or at `timeout`."""
        run = Run(started=time.time())
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        open_ids: set[str] = set()
        while True:
            due = count if rate is None else min(count, int((time.monotonic() - t0) * rate) + 1)
            while len(run.created) < due:
                self._create(run, product)
            open_ids = {i for i in run.created if i not in run.states}
            self._pay_held(run, open_ids)
            self._collect_closed(run, open_ids)
            if len(run.created) == count and len(run.states) == count:
                break
            if time.monotonic() > deadline:
                run.timed_out = True
                break
            time.sleep(POLL_SECONDS)
        run.ended = time.time()
        return run

    def _pay_held(self, run: Run, open_ids: set[str]) -> None:
        waiting = [i for i in open_ids if i not in run.accepted]
        if not waiting:
            return
        scores = self.poll.zmscore(keys.by_state(State.AWAITING_PAYMENT.value), waiting)
        held = [i for i, s in zip(waiting, scores, strict=True) if s is not None]
        self.poll_round_trips += 1 + bool(held)
        for booking in self.poll_store.load_many(held):
            if booking.state != State.AWAITING_PAYMENT:
                continue
            self.service.record_payment(PaymentEvent(
                provider="bench", event_id=f"evt_{booking.id}", kind="succeeded",
                booking_id=booking.id, payment_id=f"pi_{booking.id}",
                amount_minor=booking.total_minor, currency=booking.currency))
            run.accepted[booking.id] = time.time()

    def _collect_closed(self, run: Run, open_ids: set[str]) -> None:
        """Completed bookings by their index (one ZMSCORE a poll); every other closed
        state by reading the states, once a second (cheap polling: the driver shares
        the machine's CPU with what it measures)."""
        ids = list(open_ids)
        if not ids:
            return
        scores = self.poll.zmscore(keys.by_state(State.COMPLETED.value), ids)
        done = [i for i, score in zip(ids, scores, strict=True) if score is not None]
        self.poll_round_trips += 1
        if time.monotonic() - self._last_full_check >= 1.0:
            self._last_full_check = time.monotonic()
            pipe = self.poll.pipeline(transaction=False)
            for i in ids:
                pipe.hget(keys.booking(i), "state")
            self.poll_round_trips += 1
            done += [i for i, state in zip(ids, pipe.execute(), strict=True)
                     if state is not None and State(state) in CLOSED and i not in done]
        self.poll_round_trips += bool(done)
        for closed in self.poll_store.load_many(done):
            if closed.state in CLOSED:
                run.states[closed.id] = closed.state.value
                run.finished[closed.id] = closed.updated_at.timestamp()
