"""Property-based test of the booking invariants under duplicated and reordered messages.

Hypothesis drives the real domain steps (no Celery, so it can choose the order in which
messages run, duplicate them and interleave faults) against the real Redis store and the
Korus sandbox over HTTP. Task messages land in the recording Enqueuer of
tests/factories.py, whose calls the machine delivers in any order, any number of times, as
a broker with redelivery might (callbacks, which never touch the booking, are dropped).
Invariants:

- no blind second order call: Korus never has to refuse one of our order calls as
  "already ordered" (every second call was preceded by a reconciliation that found no
  order), and no reservation is ordered twice;
- no transition outside states.ALLOWED (the store raises), nothing leaves a final state;
- once the messages are drained, every paid booking is `completed` or `refund_required`.

A message that finds another message's live claim does nothing (as in production); the
teardown then plays the sweeper: it waits for the claims to lapse and drives the
bookings again through effects.DRIVER, as `booking.sweep` does.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.errors import SANDBOX_ALREADY_ORDERED_CODE
from korus_sandbox.faults import FAULT_KINDS
from tests.factories import Call, RecordingEnqueuer
from tests.support.booking import request_for
from worker.booking.context import RetryLater, StepContext
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.documents import fetch_documents
from worker.booking.effects import send_driver
from worker.booking.korus_mapping import customer as korus_customer
from worker.booking.ordering import claim, create_order, unordered
from worker.booking.payment import payment_succeeded
from worker.booking.record import utcnow
from worker.booking.requests import PaymentEvent
from worker.booking.reserve import reserve
from worker.booking.service import BookingService
from worker.booking.states import DRIVER, FINAL, PAID_STATES, State
from worker.booking.store import BookingStore, ConcurrentUpdateError
from worker.korus.auth import SharedTokenProvider
from worker.korus.client import KorusClient
from worker.korus.errors import (
    KorusAuthError,
    KorusError,
    KorusRejectedError,
    KorusTransientError,
)
from worker.settings import Settings


class CountingKorus(KorusClient):
    """The real client, counting order calls the sandbox refused as already ordered (its
    own rule; the worker gives that refusal no meaning)."""

    already_ordered = 0

    def create_orders(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().create_orders(*args, **kwargs)
        except KorusRejectedError as error:
            if any(v.code == SANDBOX_ALREADY_ORDERED_CODE for v in error.violations):
                CountingKorus.already_ordered += 1
            raise


# The step each recorded message runs, as its task would: (ctx, booking_id, options, task_id).
STEPS: dict[str, Callable[[StepContext, str, dict[str, Any], str], None]] = {
    "reserve": lambda ctx, booking_id, _, task_id: reserve(ctx, booking_id, task_id),
    "payment_succeeded": lambda ctx, booking_id, options, task_id: payment_succeeded(
        ctx, booking_id, task_id, options["event_id"]
    ),
    "create_order": lambda ctx, booking_id, _, task_id: create_order(ctx, booking_id, task_id),
    "fetch_documents": lambda ctx, booking_id, options, task_id: fetch_documents(
        ctx, booking_id, task_id, options.get("refresh", False)
    ),
}


@pytest.fixture(scope="module")
def machine_parts(redis_url: str, sandbox: Any, catalog: dict[str, Any]) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    app_settings = Settings(
        redis_url=redis_url,
        korus_base_url=sandbox.url,
        korus_token="unused",
        korus_read_timeout=0.3,
        korus_connect_timeout=0.3,
        order_lease_margin_seconds=0,
        korus_token_wait_seconds=0.2,
    )
    tokens = SharedTokenProvider(client, sandbox.token_url, "sandbox", "sandbox")
    korus = CountingKorus(sandbox.url, tokens, connect_timeout=0.3, read_timeout=0.3)
    return {
        "redis": client,
        "settings": app_settings,
        "korus": korus,
        "catalog": catalog,
        "admin": SandboxAdmin(sandbox.url),
    }


class BookingMachine(RuleBasedStateMachine):
    parts: dict[str, Any] = {}
    # Across all examples: proof that the run exercised the paths it claims to.
    outcomes: Counter[str] = Counter()

    def __init__(self) -> None:
        super().__init__()
        parts = self.parts
        self.admin: SandboxAdmin = parts["admin"]
        self.admin.reset()
        client: redis.Redis = parts["redis"]
        client.flushdb()
        self.enqueue = RecordingEnqueuer()
        store = BookingStore(client, retention_seconds=3600, deadline_policy=DeadlinePolicy())
        self.ctx = StepContext(
            parts["settings"], client, store, self.enqueue, lambda: parts["korus"]
        )
        self.service = BookingService(
            store, self.enqueue, event_ttl_seconds=3600, policy="all_or_nothing"
        )
        CountingKorus.already_ordered = 0
        self.ids = [
            self.service.start_booking(
                request_for(parts["catalog"], "Day Pass", external_reference=f"P-{n}")
            ).booking.id
            for n in range(2)
        ]
        self.final_seen: dict[str, State] = {}
        self.task_ids = iter(range(10**6))

    def pending(self) -> list[Call]:
        """The messages waiting for a worker: the enqueuer's calls, callbacks dropped."""
        calls = self.enqueue.calls
        calls[:] = [call for call in calls if call[0] in STEPS]
        return calls

    def run(self, index: int) -> None:
        self.pending()
        call = self.enqueue.take(index)
        name, booking_id, options = call
        task_id = f"task-{next(self.task_ids)}"
        try:
            STEPS[name](self.ctx, booking_id, options, task_id)
        except RetryLater as wait:
            time.sleep(min(wait.countdown, 0.6))
            self.enqueue.calls.append(call)
        except (KorusTransientError, KorusAuthError, ConcurrentUpdateError):
            self.enqueue.calls.append(call)  # retried, as tasks/policy.py does
        # Anything else fails the run: production would not retry it either.

    @precondition(lambda self: self.pending())
    @rule(index=st.integers(0, 50))
    def deliver(self, index: int) -> None:
        self.run(index)

    @precondition(lambda self: self.pending())
    @rule(index=st.integers(0, 50))
    def redeliver(self, index: int) -> None:
        """A message delivered twice (a worker died before acking it)."""
        pending = self.pending()
        pending.append(pending[index % len(pending)])

    @rule(
        which=st.integers(0, 1),
        event=st.integers(0, 2),
        payment=st.integers(0, 1),
        short=st.booleans(),
    )
    def pay(self, which: int, event: int, payment: int, short: bool) -> None:
        booking = self.service.get(self.ids[which])
        total = booking.total_minor or 4000
        self.service.record_payment(
            PaymentEvent(
                provider="test",
                event_id=f"evt-{which}-{event}",
                kind="succeeded",
                booking_id=booking.id,
                payment_id=f"pi-{which}-{payment}",
                amount_minor=total - 1 if short else total,
                currency="eur",
            )
        )

    @rule(which=st.integers(0, 1))
    def cancel(self, which: int) -> None:
        try:
            self.service.cancel(self.ids[which])
        except Exception as error:
            assert type(error).__name__ == "BookingConflictError"

    @precondition(lambda self: any(call[0] == "create_order" for call in self.pending()))
    @rule(sent=st.booleans())
    def worker_dies_in_create_order(self, sent: bool) -> None:
        """A worker takes a create_order message, wins the order claim, maybe sends the
        call, and dies before recording anything. The message stays pending (acks late:
        it is delivered again): the lease must hold other tasks back until the call can
        no longer be in flight, then reconciliation must find the order (if it was sent)
        instead of ordering again."""
        _, booking_id, _ = next(call for call in self.pending() if call[0] == "create_order")
        lease = timedelta(seconds=0.6)
        result = self.ctx.store.update(
            booking_id, lambda b: claim(b, "dead-task", utcnow(), lease, None)
        )
        if not result.changed or result.booking is None:
            return
        BookingMachine.outcomes[f"died_after_claim_sent={sent}"] += 1
        if sent:
            with contextlib.suppress(KorusError):
                self.parts["korus"].create_orders(
                    unordered(result.booking),
                    korus_customer(result.booking.customer),
                    booking_id,
                )

    @rule(
        fault=st.sampled_from(FAULT_KINDS),
        endpoint=st.sampled_from(
            [
                "POST /v1/booking/orders/_bulk",
                "GET /v1/booking/orders",
                "POST /v1/booking/reservations/_bulk",
            ]
        ),
    )
    def inject(self, fault: str, endpoint: str) -> None:
        self.admin.set_fault(endpoint, next=[fault], timeout_seconds=0.5, retry_after=0)

    @invariant()
    def no_blind_second_order_call(self) -> None:
        assert CountingKorus.already_ordered == 0
        per_reservation = Counter(o["reservation"] for o in self.admin.orders())
        assert all(n == 1 for n in per_reservation.values())

    @invariant()
    def final_states_are_final(self) -> None:
        for booking in self.service.store.load_many(self.ids):
            seen = self.final_seen.get(booking.id)
            if seen is not None:
                assert booking.state == seen
            elif booking.state in FINAL:
                self.final_seen[booking.id] = booking.state

    def drain(self) -> None:
        for _ in range(200):  # bounded
            if not self.pending():
                break
            self.run(0)
        assert not self.pending(), self.pending()

    def teardown(self) -> None:
        self.admin.clear_faults()
        self.drain()
        for _ in range(5):  # the sweeper, bounded: drive what a lapsed claim left behind
            driven = [b for b in self.service.store.load_many(self.ids) if b.state in DRIVER]
            if not driven:
                break
            time.sleep(self.ctx.settings.order_lease_seconds + 0.1)
            for booking in driven:
                send_driver(booking.id, booking.state, self.enqueue)
            self.drain()
        for booking in self.service.store.load_many(self.ids):
            BookingMachine.outcomes[booking.state.value] += 1
            money = booking.payment or booking.pending_payment
            if money is not None or booking.state in PAID_STATES:
                assert booking.state in FINAL, (booking.state, self.service.timeline(booking.id))
            orders = [o for o in self.admin.orders() if o["externalReference"] == booking.id]
            if booking.state == State.COMPLETED:
                assert len(orders) == len(booking.reservations) == 1
            if orders:
                assert booking.state == State.COMPLETED, self.service.timeline(booking.id)


def test_no_sequence_of_events_breaks_the_invariants(machine_parts: dict[str, Any]) -> None:
    BookingMachine.parts = machine_parts
    runner = BookingMachine.TestCase()
    runner.settings = settings(
        max_examples=120,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    BookingMachine.outcomes.clear()
    runner.runTest()
    print("final states over all examples:", dict(BookingMachine.outcomes))
    assert BookingMachine.outcomes[State.COMPLETED.value] > 0
    assert BookingMachine.outcomes[State.REFUND_REQUIRED.value] > 0
