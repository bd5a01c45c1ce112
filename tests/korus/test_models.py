"""Models read Korus JSON-LD tolerantly and build request bodies by alias."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.korus import (
    Beneficiary,
    BulkOrderResult,
    BulkReservationResult,
    Customer,
    DocumentUrl,
    FormData,
    FormFieldValue,
    KorusClientError,
    Offer,
    Order,
    Page,
    ReservationRequestItem,
    TicketSession,
    iter_pages,
    last_segment,
)

ORDER_JSON: dict[str, Any] = {
    "@context": "/v1/contexts/BookingOrder",
    "@id": "/v1/booking/orders/0194b0a8-0000-7000-8000-000000000001",
    "@type": "BookingOrder",
    "id": "0194b0a8-0000-7000-8000-000000000001",
    "createdAt": "2025-01-29T07:56:10+00:00",
    "reference": "KT-ORD-6799E80128885",
    "externalReference": "ORDER-123",
    "totalAmountInclTax": "80.00",
    "reservation": "/v1/booking/reservations/r1",
    "status": "confirmed",
    "somethingNew": {"added": "later"},
    "items": [
        {
            "@id": "/v1/booking/orders/o/items/i1",
            "id": "i1",
            "product": {"@id": "/.well-known/genid/ab", "name": "Limited Concert"},
            "unitAmountInclTax": "80.00",
            "tickets": [
                {
                    "@id": "/v1/booking/orders/o/items/i1/tickets/t1",
                    "id": "t1",
                    "voucher": "V-1",
                    "occursAt": "2025-03-01T09:00:00",
                    "status": "waiting_beneficiary_data",
                    "requiredBeneficiaryFields": ["firstname", "lastname"],
                    "beneficiary": None,
                    "seating": {"seatNumber": "12", "row": "A", "gate": "B"},
                }
            ],
        }
    ],
    "documents": ["/v1/booking/orders/o/documents/d1"],
}


def test_order_parses_money_dates_nested_tickets_and_keeps_unknown_fields() -> None:
    order = Order.model_validate(ORDER_JSON)

    assert order.iri == ORDER_JSON["@id"] and order.reference == "KT-ORD-6799E80128885"
    assert order.total_amount_incl_tax == Decimal("80.00")
    assert order.created_at == dt.datetime(2025, 1, 29, 7, 56, 10, tzinfo=dt.UTC)
    ticket = order.items[0].tickets[0]
    assert ticket.occurs_at is not None and ticket.occurs_at.tzinfo is not None  # naive → UTC
    assert ticket.needs_beneficiary and ticket.required_beneficiary_fields[0] == "firstname"
    assert ticket.seating is not None and ticket.seating.seat_number == "12"
    assert order.document_iris == ["/v1/booking/orders/o/documents/d1"]
    assert order.model_extra == {
        "@context": ORDER_JSON["@context"],
        "somethingNew": {"added": "later"},
    }


def test_bulk_results_keep_failed_items_raw_and_accept_empty_successes() -> None:
    failed = {"offer": "/v1/x", "quantity": 1, "code": "SUBSYSTEM", "message": "down"}

    reservations = BulkReservationResult.model_validate(
        {"reservations": [], "failedReservations": [failed]}
    )
    orders = BulkOrderResult.model_validate({"orders": [ORDER_JSON], "failedOrders": []})

    assert reservations.reservations == [] and reservations.failed == [failed]
    assert orders.orders[0].external_reference == "ORDER-123" and orders.failed == []


def test_offer_with_date_only_and_realtime_flags() -> None:
    offer = Offer.model_validate(
        {
            "@id": "/v1/ticketing/catalogs/c/offers/o",
            "id": "o",
            "date": "2025-03-01",
            "realtimePriceRequired": True,
            "price": {"amountInclTax": "25.50", "currency": "eur"},
            "product": {"name": "Day Pass", "description": "x"},
            "tickets": [{"@id": "/t/1", "dateAccess": False, "form": "/v1/forms/f"}],
        }
    )

    assert offer.date == dt.datetime(2025, 3, 1, tzinfo=dt.UTC)  # date-only: midnight UTC
    assert offer.realtime_price_required and not offer.availability_check_required
    assert offer.price is not None and offer.price.amount_incl_tax == Decimal("25.50")
    assert offer.product is not None and offer.product.name == "Day Pass"
    assert offer.tickets[0].form_iri == "/v1/forms/f"


def test_request_models_serialise_by_alias_without_unset_fields() -> None:
    item = ReservationRequestItem(
        offer="/o",
        quantity=2,
        ticket_sessions=[
            TicketSession(ticket="/t", session="/s"),
            TicketSession(
                ticket="/t",
                form_data=FormData(form="/f", fields=[FormFieldValue(field="/ff", value="Doe")]),
            ),
        ],
    )

    assert item.to_json_body() == {
        "offer": "/o",
        "quantity": 2,
        "ticketSessions": [
            {"ticket": "/t", "session": "/s"},
            {
                "ticket": "/t",
                "formData": {"form": "/f", "fields": [{"field": "/ff", "value": "Doe"}]},
            },
        ],
    }
    assert Customer(firstname="A", lastname="B", email="a@b.c", optin=False).to_json_body() == {
        "firstname": "A",
        "lastname": "B",
        "email": "a@b.c",
        "optin": False,
    }
    beneficiary = Beneficiary(firstname="A", date_of_birth=dt.date(1990, 5, 17))
    assert beneficiary.to_json_body() == {"firstname": "A", "dateOfBirth": "1990-05-17"}


def test_document_url_expiry_comes_from_its_expires_parameter() -> None:
    url = DocumentUrl.model_validate(
        {"@id": "/d/1", "id": "1", "temporaryUrl": "https://s3/x.pdf?X=1&Expires=1738140000&Sig=z"}
    )
    assert url.expires_at == dt.datetime.fromtimestamp(1738140000, tz=dt.UTC)
    assert DocumentUrl.model_validate({"temporaryUrl": "https://s3/x.pdf"}).expires_at is None


def _page(number: int, last: int) -> Page[Order]:
    view = {"next": f"/v1/booking/orders?page={number + 1}"} if number < last else {}
    return Page[Order].model_validate(
        {"member": [{"id": f"o{number}"}], "totalItems": last, "view": view}
    )


def test_iter_pages_follows_next_links_until_the_last_page() -> None:
    fetched: list[str] = []

    def fetch(iri: str) -> Page[Order]:
        fetched.append(iri)
        return _page(int(iri.rsplit("=", 1)[1]), 3)

    ids = [order.id for order in iter_pages(_page(1, 3), fetch)]

    assert ids == ["o1", "o2", "o3"]
    assert fetched == ["/v1/booking/orders?page=2", "/v1/booking/orders?page=3"]


def test_iter_pages_refuses_to_truncate_silently() -> None:
    with pytest.raises(KorusClientError, match="more than 2 pages"):
        list(iter_pages(_page(1, 5), lambda iri: _page(int(iri.rsplit("=", 1)[1]), 5), max_pages=2))


def test_iter_pages_refuses_a_link_loop_or_an_empty_page_that_links_on() -> None:
    with pytest.raises(KorusClientError, match="inconsistent"):
        list(iter_pages(_page(1, 5), lambda iri: _page(1, 5)))  # page 2 links to 2 again
    empty = Page[Order].model_validate(
        {"member": [], "totalItems": 3, "view": {"next": "/v1/booking/orders?page=2"}}
    )
    with pytest.raises(KorusClientError, match="inconsistent"):
        list(iter_pages(empty, lambda iri: _page(2, 3)))


@given(
    st.from_regex(r"[0-9a-f-]{1,36}", fullmatch=True), st.sampled_from(["", "/v1/booking/orders/"])
)
def test_last_segment_reads_ids_and_iris_alike(identifier: str, prefix: str) -> None:
    assert last_segment(prefix + identifier) == identifier
    assert last_segment(f"{prefix}{identifier}?page=2") == identifier
