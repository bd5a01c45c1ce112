"""Beneficiary data goes only to real order-ticket paths.

The documented order answer names its items and tickets by blank nodes. Korus is played
here by a scripted HTTP server on loopback answering with the documented shapes (the
sandbox always gives real IRIs on `GET /v1/booking/orders/{id}`, so it cannot show the
case where Korus gives none).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from tests.factories import RecordingEnqueuer, booking_in
from tests.korus.conftest import static_client
from tests.korus.scripted_server import Reply, ScriptedServer
from tests.support.shapes import example
from worker.booking.context import StepContext
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.documents import fetch_documents
from worker.booking.ordering import placed_from
from worker.booking.record import Booking, HeldReservation
from worker.booking.states import State
from worker.booking.store import BookingStore
from worker.korus.models import BulkOrderResult
from worker.settings import Settings

ORDER_ID = "0194b132-448c-7d1b-bb13-f8e09ae5c18f"


def documented_order(named: bool) -> dict[str, Any]:
    """The documented order, its first ticket waiting for beneficiary data."""
    order = copy.deepcopy(example("orders-bulk.200.json")["orders"][0])
    ticket = order["items"][0]["tickets"][0]
    ticket["status"] = "waiting_beneficiary_data"
    ticket["requiredBeneficiaryFields"] = ["firstname", "lastname"]
    if named:
        order["items"][0]["@id"] = f"/v1/booking/orders/{ORDER_ID}/items/i1"
        for n, each in enumerate(order["items"][0]["tickets"]):
            each["@id"] = f"/v1/booking/orders/{ORDER_ID}/items/i1/tickets/t{n}"
    return order


@pytest.fixture
def korus() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()


def ordered_booking(store: BookingStore) -> Booking:
    answer = BulkOrderResult.model_validate({"orders": [documented_order(named=False)]})
    placed = placed_from(answer.orders[0])
    assert placed is not None and placed.tickets[0].id is None
    now = datetime.now(UTC)
    booking = booking_in(
        State.ORDERED,
        now=now,
        id="bk_ticket_ids",
        beneficiaries=[{"firstname": "Ada", "lastname": "Lovelace"}],
        language="fr",
        reservations=[
            HeldReservation(id="r", iri=placed.reservation, expires_at=now, total_incl_tax=80)
        ],
        orders=[placed],
    )
    assert store.create(booking, reason="ordered by the test")
    return booking


def context(redis_client: redis.Redis, korus: ScriptedServer) -> StepContext:
    store = BookingStore(redis_client, retention_seconds=3600, deadline_policy=DeadlinePolicy())
    settings = Settings(redis_url="redis://unused", korus_base_url=korus.url, korus_token="t")
    client = static_client(korus.url, "t")
    return StepContext(settings, redis_client, store, RecordingEnqueuer(), lambda: client)


def test_blank_node_tickets_are_read_from_the_order_then_patched_at_their_real_path(
    redis_client: redis.Redis, korus: ScriptedServer
) -> None:
    ctx = context(redis_client, korus)
    booking = ordered_booking(ctx.store)
    listing = example("order-documents.200.json")
    korus.reply(
        Reply(200, {"@context": "/contexts/BookingOrder", **documented_order(named=True)}),
        Reply(200, {"@id": f"/v1/booking/orders/{ORDER_ID}/items/i1/tickets/t0"}),
        Reply(200, listing),
        Reply(200, example("order-document.patch.200.json")),
    )

    fetch_documents(ctx, booking.id, "t-docs")

    done = ctx.store.load(booking.id)
    assert done is not None and done.state == State.COMPLETED, ctx.store.timeline(booking.id)
    assert [(s.method, s.path) for s in korus.seen[:2]] == [
        ("GET", f"/v1/booking/orders/{ORDER_ID}"),
        ("PATCH", f"/v1/booking/orders/{ORDER_ID}/items/i1/tickets/t0"),
    ]
    assert not any("genid" in s.path for s in korus.seen)
    assert done.orders[0].tickets[0].id == "t0" and done.beneficiaries_sent == ["t0"]
    assert {s.headers["Accept-Language"] for s in korus.seen} == {"fr"}


def test_tickets_korus_never_names_park_the_booking_with_an_alert(
    redis_client: redis.Redis, korus: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = context(redis_client, korus)
    booking = ordered_booking(ctx.store)
    korus.reply(Reply(200, documented_order(named=False)))

    with caplog.at_level(logging.ERROR):
        fetch_documents(ctx, booking.id, "t-docs")

    parked = ctx.store.load(booking.id)
    assert parked is not None and parked.state == State.AWAITING_BENEFICIARY
    assert "no ticket id" in (parked.reason or "")
    assert f"ALERT ticket_ids_missing booking={booking.id}" in caplog.text
    assert [(s.method, s.path) for s in korus.seen] == [("GET", f"/v1/booking/orders/{ORDER_ID}")]
