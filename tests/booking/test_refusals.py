"""What a refused order call and a lagging listing mean, against the sandbox over HTTP.

The steps run directly (no Celery) with a clock the test moves, so the bounded waits are
proved without sleeping: a refusal Korus does not document is never refunded; the
listing is read again (RetryLater) until the window ends, then a person is alerted; only
the documented expiry with no order listed requires a refund; documents the order named
but the listing lacks are waited for, never taken as "no documents"; a documents wait has
one owner (a broker countdown, the sweeper only as its backstop; or the sweeper alone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from korus_sandbox.admin import SandboxAdmin
from tests.support.booking import KORUS_CUSTOMER, pay, request_for, wait_for
from worker.booking import keys
from worker.booking.context import RetryLater, StepContext
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.documents import fetch_documents
from worker.booking.ordering import claim, create_order
from worker.booking.payment import payment_succeeded
from worker.booking.reserve import reserve
from worker.booking.service import BookingService
from worker.booking.states import State
from worker.booking.store import BookingStore
from worker.booking.sweep import sweep
from worker.korus.auth import SharedTokenProvider
from worker.korus.client import KorusClient
from worker.settings import Settings

ORDERS = "POST /v1/booking/orders/_bulk"
WINDOW = 600.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Steps:
    """The booking steps, run by hand, queueing what they ask for."""

    def __init__(self) -> None:
        self.queued: list[str] = []
        self.payment_events: list[str] = []

    def reserve(self, booking_id: str) -> None:
        self.queued.append("reserve")

    def payment_succeeded(self, booking_id: str, event_id: str) -> None:
        self.queued.append("payment")
        self.payment_events.append(event_id)

    def create_order(self, booking_id: str, *, urgent: bool = False, countdown: float = 0) -> None:
        self.queued.append("order")

    def fetch_documents(
        self, booking_id: str, *, countdown: float = 0, refresh: bool = False
    ) -> None:
        self.queued.append("documents")

    def notify(self, booking_id: str, event_type: str) -> None:
        self.queued.append(f"notify:{event_type}")


@pytest.fixture
def parts(
    redis_client: redis.Redis, sandbox: Any, admin: SandboxAdmin
) -> Iterator[tuple[StepContext, BookingService, Clock]]:
    admin.reset()
    settings = Settings(
        redis_url="redis://unused",
        korus_base_url=sandbox.url,
        korus_token="unused",
        order_reconcile_window_seconds=WINDOW,
        documents_listing_wait_seconds=WINDOW,
        listing_backoff_cap_seconds=60,
    )
    tokens = SharedTokenProvider(redis_client, sandbox.token_url, "sandbox", "sandbox")
    korus = KorusClient(sandbox.url, tokens, connect_timeout=2, read_timeout=5)
    store = BookingStore(redis_client, retention_seconds=3600, deadline_policy=DeadlinePolicy())
    steps = Steps()
    clock = Clock()
    ctx = StepContext(settings, redis_client, store, steps, lambda: korus, clock=clock)
    service = BookingService(store, steps, event_ttl_seconds=3600, policy="all_or_nothing")
    yield ctx, service, clock
    admin.configure(hold_seconds=900, orders_listing_lag_seconds=0, documents_listing_lag_seconds=0)


def paid(
    ctx: StepContext,
    service: BookingService,
    catalog: dict[str, Any],
    product: str = "Day Pass",
    **extra: Any,
) -> str:
    booking = service.start_booking(request_for(catalog, product, **extra)).booking
    reserve(ctx, booking.id, "t-reserve")
    pay(service, wait_for(service, booking.id, State.AWAITING_PAYMENT))
    steps = ctx.enqueue
    assert isinstance(steps, Steps)
    payment_succeeded(ctx, booking.id, "t-pay", steps.payment_events[-1])
    assert service.get(booking.id).state == State.PAID
    return booking.id


def test_a_refusal_the_listing_does_not_explain_waits_then_alerts_and_never_refunds(
    parts: tuple[StepContext, BookingService, Clock],
    admin: SandboxAdmin,
    catalog: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx, service, clock = parts
    booking_id = paid(ctx, service, catalog)
    # The reservation's order is made behind the worker's back, and the listing lags:
    # Korus refuses the worker's call (the sandbox's own "already ordered" rule).
    admin.configure(orders_listing_lag_seconds=3600)
    reservation = service.get(booking_id).reservations[0].iri
    ctx.korus.create_orders([reservation], KORUS_CUSTOMER, booking_id)

    with pytest.raises(RetryLater) as first:
        create_order(ctx, booking_id, "t-order-1")
    uncertain = service.get(booking_id)
    assert uncertain.state == State.ORDER_UNCERTAIN and uncertain.order_unresolved_since
    assert 2 <= first.value.countdown <= 60

    clock.advance(WINDOW / 2)
    with pytest.raises(RetryLater) as again:
        create_order(ctx, booking_id, "t-order-2")
    assert again.value.countdown == 60  # capped backoff, growing with the wait
    clock.advance(WINDOW / 2 + 1)
    with caplog.at_level(logging.ERROR):
        create_order(ctx, booking_id, "t-order-3")  # the window is over: no RetryLater

    assert service.get(booking_id).state == State.ORDER_UNCERTAIN  # never refund_required
    assert f"ALERT order_unresolved booking={booking_id}" in caplog.text
    assert admin.calls()[ORDERS] == 2  # ours once, never resent after the refusal

    admin.configure(orders_listing_lag_seconds=0)  # the listing catches up
    create_order(ctx, booking_id, "t-order-4")
    assert service.get(booking_id).state == State.ORDERED


def test_documented_expiry_with_no_order_listed_requires_a_refund(
    parts: tuple[StepContext, BookingService, Clock],
    admin: SandboxAdmin,
    catalog: dict[str, Any],
) -> None:
    ctx, service, _ = parts
    admin.configure(hold_seconds=1)
    booking_id = paid(ctx, service, catalog)
    time.sleep(1.2)

    create_order(ctx, booking_id, "t-order")

    done = service.get(booking_id)
    assert done.state == State.REFUND_REQUIRED and "expired" in (done.reason or "")
    assert admin.calls()[ORDERS] == 1


def test_documents_the_listing_lacks_are_waited_for_then_alerted(
    parts: tuple[StepContext, BookingService, Clock],
    admin: SandboxAdmin,
    catalog: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx, service, clock = parts
    booking_id = paid(ctx, service, catalog, language="de")
    create_order(ctx, booking_id, "t-order")
    assert service.get(booking_id).state == State.ORDERED
    admin.configure(documents_listing_lag_seconds=3600)

    with pytest.raises(RetryLater):
        fetch_documents(ctx, booking_id, "t-docs-1")
    pending = service.get(booking_id)
    assert pending.state == State.DOCUMENTS_PENDING and pending.documents_missing_since
    assert pending.documents == []  # an empty listing is "not ready", not "no documents"

    clock.advance(WINDOW + 1)
    with caplog.at_level(logging.ERROR):
        fetch_documents(ctx, booking_id, "t-docs-2")
    assert service.get(booking_id).state == State.DOCUMENTS_PENDING
    assert f"ALERT documents_missing booking={booking_id}" in caplog.text

    admin.configure(documents_listing_lag_seconds=0)
    fetch_documents(ctx, booking_id, "t-docs-3")
    done = service.get(booking_id)
    assert done.state == State.COMPLETED and done.documents_missing_since is None
    assert [d.cached_language for d in done.documents] == ["de"]


LISTING = "GET /v1/booking/orders/{o}/documents"
URL = "PATCH /v1/booking/orders/{o}/documents/{d}"


def test_late_documents_are_fetched_once_by_the_countdown_and_the_sweeper_is_its_backstop(
    parts: tuple[StepContext, BookingService, Clock], admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    ctx, service, clock = parts
    steps = ctx.enqueue
    assert isinstance(steps, Steps)
    admin.configure(documents_delay_seconds=1.0)
    try:
        booking_id = paid(ctx, service, catalog, "Late Documents Tour")
        create_order(ctx, booking_id, "t-order")
        before = admin.calls()
        clock.now = datetime.now(UTC)

        with pytest.raises(RetryLater) as wait:
            fetch_documents(ctx, booking_id, "t-docs-1")
        pending = service.get(booking_id)
        assert pending.state == State.DOCUMENTS_PENDING
        downloadable = pending.documents[0].downloadable_at
        assert downloadable is not None and downloadable.microsecond == 0  # whole seconds
        back = clock.now + timedelta(seconds=wait.value.countdown)
        # Korus rounds downloadableAt down: the countdown ends after that second, not in it.
        assert back >= downloadable + timedelta(seconds=1)
        # The countdown owns the wait: the record's retry_at (the deadline) is only the
        # sweeper's backstop, a redrive period after the countdown's end.
        redrive = ctx.store.deadline_policy.redrive_after
        assert pending.retry_at == back + redrive
        assert ctx.redis.zscore(keys.DEADLINES, booking_id) == pending.retry_at.timestamp()

        # Once the document is downloadable the sweeper does not wake the booking too.
        clock.now = downloadable + timedelta(seconds=2)
        steps.queued.clear()
        assert "documents" not in sweep(ctx)
        assert "documents" not in steps.queued
        # If the countdown's message was lost, the sweeper sends the task at the backstop.
        clock.now = pending.retry_at + timedelta(seconds=1)
        assert sweep(ctx)["documents"] == 1 and steps.queued.count("documents") == 1

        # The countdown's message (or the sweeper's) finds the document downloadable.
        for _ in range(100):  # the sandbox's clock is the real one
            if datetime.now(UTC) >= back:
                break
            time.sleep(0.05)
        clock.now = max(datetime.now(UTC), back)
        fetch_documents(ctx, booking_id, "t-docs-2")
        assert service.get(booking_id).state == State.COMPLETED
    finally:
        admin.configure(documents_delay_seconds=2.0)
    after = admin.calls()
    assert after.get(LISTING, 0) - before.get(LISTING, 0) == 2  # one look each wake-up
    assert after.get(URL, 0) - before.get(URL, 0) == 1  # asked for once, when ready


def test_a_long_wait_for_a_lagging_listing_is_the_sweepers_alone(
    parts: tuple[StepContext, BookingService, Clock], admin: SandboxAdmin, catalog: dict[str, Any]
) -> None:
    ctx, service, clock = parts
    steps = ctx.enqueue
    assert isinstance(steps, Steps)
    booking_id = paid(ctx, service, catalog)
    create_order(ctx, booking_id, "t-order")
    admin.configure(documents_listing_lag_seconds=3600)

    with pytest.raises(RetryLater):  # a first short wait: a broker countdown
        fetch_documents(ctx, booking_id, "t-docs-1")
    clock.advance(100)
    fetch_documents(ctx, booking_id, "t-docs-2")  # a long one: no countdown at all
    pending = service.get(booking_id)
    assert pending.state == State.DOCUMENTS_PENDING and pending.documents == []
    assert pending.retry_at == clock.now + timedelta(seconds=50)  # half the time waited

    steps.queued.clear()
    clock.advance(49)
    assert "documents" not in sweep(ctx)
    clock.advance(2)
    # The sweeper enqueues the step at the end of the wait, though nothing is listed yet.
    assert sweep(ctx)["documents"] == 1 and steps.queued.count("documents") == 1


def test_a_second_delivery_of_create_order_waits_for_the_lease_of_the_first(
    parts: tuple[StepContext, BookingService, Clock],
    admin: SandboxAdmin,
    catalog: dict[str, Any],
) -> None:
    """RabbitMQ requeues a message when a connection drops, so a second copy (the same
    task id) can arrive while the first is still in its order call. The listing cannot
    show that order yet: the copy must wait for the attempt's lease, never reconcile
    and call again. (Before, a copy with the same task id was let through; with a real
    RabbitMQ connection drop its timeline read "reconciled: 1 reservation(s) not
    ordered", then "order call 2 starting".)"""
    ctx, service, clock = parts
    booking_id = paid(ctx, service, catalog)
    lease = timedelta(seconds=ctx.settings.order_lease_seconds)
    # The first copy of "t-order" won the attempt and is in its call.
    ctx.store.update(booking_id, lambda b: claim(b, "t-order", clock(), lease, None))
    assert service.get(booking_id).state == State.ORDERING

    for _ in range(3):  # it looks again in short steps while the lease runs
        with pytest.raises(RetryLater) as second_copy:
            create_order(ctx, booking_id, "t-order")
        assert second_copy.value.countdown <= ctx.settings.countdown_max_seconds
        clock.advance(second_copy.value.countdown)
    assert admin.calls().get(ORDERS, 0) == 0
    assert service.get(booking_id).state == State.ORDERING

    # The first copy died with its call unanswered: after the lease the message
    # reconciles (the listing shows nothing) and only then calls.
    clock.advance(lease.total_seconds())
    create_order(ctx, booking_id, "t-order")
    assert service.get(booking_id).state == State.ORDERED
    assert admin.calls()[ORDERS] == 1
