"""The client reads every documented Korus answer byte for byte, and the tolerated
variants of it; an answer it cannot read is logged (paths, no personal data), alerted
and retried like a transient error."""

from __future__ import annotations

import copy
import json
import logging
from decimal import Decimal
from typing import Any

import pytest

from tests.korus.conftest import static_client
from tests.korus.scripted_server import Reply, ScriptedServer
from tests.support.shapes import EXAMPLES_DIR, example
from worker.booking import korus_mapping
from worker.booking.ordering import placed_from
from worker.booking.requests import BookingRequest
from worker.korus import (
    BulkOrderResult,
    Customer,
    KorusOutcomeUnknownError,
    KorusTransientError,
    KorusUnreadableAnswerError,
    KorusUnreadableWriteError,
    Order,
    ReservationRequestItem,
)
from worker.korus.client import parse_answer

ORDER_ID = "0194b132-448c-7d1b-bb13-f8e09ae5c18f"
DOCUMENT_ID = "0194b132-449c-79cd-9da1-50be439b6e9d"


def raw(name: str) -> Reply:
    return Reply(201 if "201" in name else 200, raw=(EXAMPLES_DIR / name).read_bytes())


def test_every_documented_answer_is_read_byte_for_byte(server: ScriptedServer) -> None:
    client = static_client(server.url, "t")
    server.reply(
        raw("reservations-bulk.201.json"),
        raw("orders-bulk.200.json"),
        raw("order-documents.200.json"),
        raw("order-document.patch.200.json"),
    )
    request = example("reservations-bulk.request.json")
    items = [ReservationRequestItem.model_validate(item) for item in request["items"]]
    reserved = client.reserve(items, language="fr")
    (reservation,) = reserved.reservations
    assert reservation.id == "35e72d9b-0fdc-44e3-869c-e1781c14418e" and reserved.failed == []
    assert reservation.total_amount_incl_tax == Decimal("80.00")
    assert [t.session is not None for t in reservation.items[0].offer_tickets] == [False, True]

    order_request = example("orders-bulk.request.json")
    ordered = client.create_orders(
        order_request["reservations"],
        Customer.model_validate(order_request["customer"]),
        order_request["externalReference"],
        language="fr",
    )
    (order,) = ordered.orders
    assert order.id == ORDER_ID and order.customer is None  # `"customer": []`
    first, second = order.items[0].tickets
    assert first.occurs_at is None and first.seating is None and first.voucher is None
    assert second.occurs_at is not None and second.occurs_at.utcoffset().total_seconds() == 7200  # type: ignore[union-attr]
    assert second.seating is not None and second.seating.seat_number == "227"
    assert order.document_iris == [f"/v1/booking/orders/{ORDER_ID}/documents/{DOCUMENT_ID}"]

    (document,) = client.list_documents(ORDER_ID, language="fr")
    assert document.id == DOCUMENT_ID and document.downloadable_at is not None
    url = client.get_document_url(ORDER_ID, DOCUMENT_ID, language="fr")
    assert url.cached_language == "fr" and url.expires_at is not None
    assert url.expires_at.timestamp() == 1738235339
    # The booking's language travels as Accept-Language on every call.
    assert {seen.headers.get("Accept-Language") for seen in server.seen} == {"fr"}
    # The typed requests went out as the documented bodies.
    assert json.loads(server.seen[0].body) == request
    assert json.loads(server.seen[1].body) == order_request


def test_the_documented_order_gives_no_ticket_path_from_its_blank_nodes() -> None:
    order = BulkOrderResult.model_validate(example("orders-bulk.200.json")).orders[0]
    placed = placed_from(order)
    assert placed is not None and placed.id == ORDER_ID
    assert [(t.id, t.iri, t.item_id) for t in placed.tickets] == [(None, None, None)] * 2
    assert [t.ticket for t in placed.tickets] == [t.ticket for t in order.items[0].tickets]
    assert placed.tickets[1].seating is not None and placed.tickets[1].seating["gate"] == "V"
    assert placed.document_ids == [DOCUMENT_ID]


def test_real_ticket_iris_give_the_ticket_path() -> None:
    documented = example("orders-bulk.200.json")["orders"][0]
    item = documented["items"][0]
    item["@id"] = f"/v1/booking/orders/{ORDER_ID}/items/i1"
    item["tickets"][0]["@id"] = f"/v1/booking/orders/{ORDER_ID}/items/i1/tickets/t1"
    placed = placed_from(Order.model_validate(documented))
    assert placed is not None
    assert [(t.id, t.item_id) for t in placed.tickets] == [("t1", "i1"), (None, "i1")]


@pytest.mark.parametrize("empty", [[], {}, None, "missing"])
def test_an_empty_object_may_come_in_any_documented_form(empty: Any) -> None:
    documented = example("orders-bulk.200.json")
    order = documented["orders"][0]
    for target in (order, order["items"][0]["tickets"][0]):
        for key in ("customer", "beneficiary", "seating"):
            if key in target:
                if empty == "missing":
                    del target[key]
                else:
                    target[key] = copy.deepcopy(empty)
    parsed = BulkOrderResult.model_validate(documented).orders[0]
    assert parsed.id == ORDER_ID and placed_from(parsed) is not None


def test_hydra_prefixed_collections_and_other_offsets_read_the_same() -> None:
    from worker.korus import DocumentRef, Page

    listing = example("order-documents.200.json")
    prefixed = {
        ("hydra:" + k if k in ("member", "totalItems") else k): v for k, v in listing.items()
    }
    prefixed["hydra:view"] = {"hydra:next": "/v1/x?page=2"}
    prefixed["hydra:member"][0]["downloadableAt"] = "2025-01-29T09:34:09+01:00"
    page = Page[DocumentRef].model_validate(prefixed)
    assert page.total_items == 1 and page.next_iri == "/v1/x?page=2"
    plain = Page[DocumentRef].model_validate(listing)
    assert page.member[0].downloadable_at == plain.member[0].downloadable_at


def test_the_documented_request_is_a_valid_merchant_booking() -> None:
    body = {
        "externalReference": "CUSTOM_BOOKING_REF_NUMBER_003",
        "items": example("reservations-bulk.request.json")["items"],
        "customer": example("orders-bulk.request.json")["customer"],
        "language": "fr",
    }
    request = BookingRequest.model_validate(body)
    assert request.items[0].quantity == 1 and len(request.items[0].ticket_sessions) == 2
    # What the booking keeps of it goes to Korus as the documented bodies.
    sent = [item.to_json_body() for item in korus_mapping.reservation_items(request.items)]
    assert sent == body["items"]
    assert korus_mapping.customer(request.customer).to_json_body() == body["customer"]


def test_an_unreadable_answer_names_fields_not_values_alerts_and_is_transient(
    caplog: pytest.LogCaptureFixture,
) -> None:
    documented = example("orders-bulk.200.json")
    documented["orders"][0]["customer"] = {"email": "john.doe@gmail.com", "lastname": "Doe"}
    documented["orders"][0]["totalAmountInclTax"] = "john.doe@gmail.com"
    documented["orders"][0]["items"] = "Doe"
    with caplog.at_level(logging.ERROR), pytest.raises(KorusUnreadableWriteError) as caught:
        parse_answer(BulkOrderResult, documented, "POST", "/v1/booking/orders/_bulk")
    error = caught.value
    assert isinstance(error, KorusTransientError) and isinstance(error, KorusOutcomeUnknownError)
    assert error.fields == (
        "orders[0].totalAmountInclTax (decimal_parsing)",
        "orders[0].items (list_type)",
    )
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "orders[0].totalAmountInclTax" in logged and "ALERT korus_unreadable_answer" in logged
    assert "john.doe" not in logged and "Doe" not in logged and "john.doe" not in str(error)
    assert error.body_excerpt == ""


def test_an_unreadable_read_is_transient_but_not_outcome_unknown() -> None:
    with pytest.raises(KorusUnreadableAnswerError) as caught:
        parse_answer(Order, {"items": [{"tickets": 3}]}, "GET", "/v1/booking/orders/x")
    assert not isinstance(caught.value, KorusOutcomeUnknownError)


def test_every_example_file_is_valid_json_as_copied() -> None:
    names = sorted(p.name for p in EXAMPLES_DIR.glob("*.json"))
    assert len(names) == 7
    for name in names:
        json.loads((EXAMPLES_DIR / name).read_bytes())


def _retyped(value: Any, mode: str) -> Any:
    """Every `@type`/`@context` renamed (`other`) or dropped (`gone`)."""
    if isinstance(value, list):
        return [_retyped(v, mode) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key in ("@type", "@context"):
            if mode == "other":
                out[key] = "SomethingElse"
        else:
            out[key] = _retyped(item, mode)
    return out


@pytest.mark.parametrize("mode", ["other", "gone"])
def test_context_and_type_decide_nothing(mode: str) -> None:
    documented = example("orders-bulk.200.json")
    expected = placed_from(BulkOrderResult.model_validate(documented).orders[0])
    retyped = BulkOrderResult.model_validate(_retyped(documented, mode)).orders[0]
    assert placed_from(retyped) == expected
