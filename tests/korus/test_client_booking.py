"""The write side against the sandbox: reserve, order once, reconcile, documents."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.support.booking import KORUS_CUSTOMER
from tests.support.booking import korus_item as item
from worker.korus import (
    Beneficiary,
    FormData,
    FormFieldValue,
    KorusClient,
    KorusRejectedError,
    Order,
    ReservationRequestItem,
    TicketSession,
)

if TYPE_CHECKING:
    from korus_sandbox.admin import SandboxAdmin

def reserve_one(client: KorusClient, entry: dict[str, Any]) -> str:
    result = client.reserve([item(entry)])
    (reservation,) = result.reservations
    assert reservation.iri is not None
    return reservation.iri


def order_one(client: KorusClient, entry: dict[str, Any], reference: str) -> Order:
    result = client.create_orders([reserve_one(client, entry)], KORUS_CUSTOMER, reference)
    (order,) = result.orders
    return order


def test_reserve_holds_tickets_until_expires_at(
    client: KorusClient, catalog: dict[str, Any]
) -> None:
    result = client.reserve([item(catalog["Day Pass"], quantity=2)])

    (reservation,) = result.reservations
    assert result.failed == []
    assert reservation.total_amount_incl_tax == Decimal("80.00")
    assert not reservation.expired and reservation.order is None
    assert reservation.expires_at is not None and reservation.created_at is not None
    assert reservation.expires_at - reservation.created_at == dt.timedelta(seconds=900)
    assert len(reservation.items[0].offer_tickets) == 2

    fetched = client.get_reservation(reservation.iri or "")
    assert fetched.id == reservation.id and fetched.expires_at == reservation.expires_at
    assert fetched.status == "reserved"


def test_reserve_with_models_sessions_and_form_data(
    client: KorusClient, catalog: dict[str, Any]
) -> None:
    museum, tour = catalog["Timed Museum Entry"], catalog["Guided Tour With Form"]
    items = [
        ReservationRequestItem(
            offer=museum["offer"],
            quantity=1,
            ticket_sessions=[
                TicketSession(ticket=museum["tickets"][0], session=museum["sessions"][1])
            ],
        ),
        ReservationRequestItem(
            offer=tour["offer"],
            quantity=1,
            ticket_sessions=[
                TicketSession(
                    ticket=tour["tickets"][0],
                    form_data=FormData(
                        form=tour["form"],
                        fields=[FormFieldValue(field=tour["form_fields"][0], value="Doe")],
                    ),
                )
            ],
        ),
    ]

    result = client.reserve(items)

    assert len(result.reservations) == 2 and result.failed == []
    held = result.reservations[0].items[0].offer_tickets[0]
    assert held.session == museum["sessions"][1]


def test_a_failing_subsystem_gives_raw_failed_items(
    client: KorusClient, catalog: dict[str, Any]
) -> None:
    broken = catalog["Broken Subsystem Ride"]

    partial = client.reserve([item(catalog["Day Pass"]), item(broken)])
    none = client.reserve([item(broken)])  # every item failed: still an answer, not an error

    assert len(partial.reservations) == 1 and len(partial.failed) == 1
    assert partial.failed[0]["offer"] == broken["offer"] and "code" in partial.failed[0]
    assert none.reservations == [] and len(none.failed) == 1


def test_an_inconsistent_reservation_is_rejected_with_violations(
    client: KorusClient, catalog: dict[str, Any]
) -> None:
    with pytest.raises(KorusRejectedError) as caught:
        client.reserve([item(catalog["Limited Concert"], quantity=6)])  # only 5 exist

    assert caught.value.status == 422 and caught.value.violations
    assert not caught.value.reservation_expired


def test_create_orders_then_find_and_get_the_order(
    client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin
) -> None:
    reservation = reserve_one(client, catalog["Limited Concert"])

    result = client.create_orders([reservation], KORUS_CUSTOMER, "BW-ORDER-1")

    (order,) = result.orders
    assert result.failed == []
    assert order.external_reference == "BW-ORDER-1" and order.reference
    assert order.reservation_iri == reservation and order.customer is None  # `[]`
    ticket = order.items[0].tickets[0]
    assert ticket.voucher and ticket.seating is not None and ticket.seating.seat_number
    assert ticket.real_iri is None and ticket.id is None  # a blank node, as documented
    assert [found.id for found in client.find_orders("BW-ORDER-1")] == [order.id]
    fetched = client.get_order(order.iri or "")
    assert fetched.reference == order.reference and fetched.status == "confirmed"
    assert fetched.items[0].tickets[0].real_iri  # GET gives the ticket's real IRI
    assert client.get_reservation(reservation).order == order.iri
    assert client.find_orders("BW-NO-SUCH-ORDER") == []


def test_ordering_a_reservation_twice_is_refused_but_not_as_expired(
    client: KorusClient, catalog: dict[str, Any]
) -> None:
    reservation = reserve_one(client, catalog["Day Pass"])
    client.create_orders([reservation], KORUS_CUSTOMER, "BW-TWICE")

    with pytest.raises(KorusRejectedError) as caught:
        client.create_orders([reservation], KORUS_CUSTOMER, "BW-TWICE")

    # The sandbox's own rule; Korus documents no answer, so the client gives it no name.
    assert caught.value.status == 422 and not caught.value.reservation_expired
    assert len(client.find_orders("BW-TWICE")) == 1


def test_ordering_an_expired_reservation_is_rejected_as_expired(
    client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin
) -> None:
    admin.configure(hold_seconds=0.5)
    reservation = reserve_one(client, catalog["Day Pass"])
    time.sleep(0.7)

    with pytest.raises(KorusRejectedError) as caught:
        client.create_orders([reservation], KORUS_CUSTOMER, "BW-LATE")

    assert caught.value.reservation_expired
    assert client.get_reservation(reservation).expired


def test_find_orders_reads_every_page(client: KorusClient, catalog: dict[str, Any]) -> None:
    day_pass = catalog["Day Pass"]
    result = client.reserve([item(day_pass) for _ in range(55)])  # listing pages hold 50
    iris = [reservation.iri or "" for reservation in result.reservations]

    created = client.create_orders(iris, KORUS_CUSTOMER, "BW-MANY")

    found = client.find_orders("BW-MANY")
    assert len(created.orders) == len(found) == 55
    assert {order.id for order in found} == {order.id for order in created.orders}


def test_beneficiary_data_unlocks_documents(client: KorusClient, catalog: dict[str, Any]) -> None:
    # The order answer names items and tickets by blank nodes: their paths come from GET.
    order = client.get_order(order_one(client, catalog["Named Festival Pass"], "BW-NAMED").id or "")
    order_item = order.items[0]
    ticket = order_item.tickets[0]
    assert ticket.needs_beneficiary
    assert set(ticket.required_beneficiary_fields) == {"firstname", "lastname", "dateOfBirth"}
    (document,) = client.list_documents(order.id or "")

    with pytest.raises(KorusRejectedError) as missing:
        client.get_document_url(order.iri or "", document.iri or "")
    assert missing.value.beneficiary_missing

    beneficiary = Beneficiary(
        firstname="Ada", lastname="Lovelace", date_of_birth=dt.date(1990, 5, 17)
    )
    updated = client.set_beneficiary(
        order.id or "", order_item.id or "", ticket.iri or "", beneficiary
    )
    assert updated.status == "validated" and updated.beneficiary is not None
    assert updated.beneficiary["firstname"] == "Ada"

    url = client.get_document_url(order.id or "", document.id or "")
    assert url.expires_at is not None
    assert url.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    pdf = requests.get(url.temporary_url, timeout=5)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_incomplete_beneficiary_is_rejected(client: KorusClient, catalog: dict[str, Any]) -> None:
    order = client.get_order(order_one(client, catalog["Named Festival Pass"], "BW-HALF").id or "")
    order_item = order.items[0]

    with pytest.raises(KorusRejectedError) as caught:
        client.set_beneficiary(
            order.id or "",
            order_item.id or "",
            order_item.tickets[0].id or "",
            Beneficiary(firstname="Ada"),
        )

    assert any(v.property_path.startswith("beneficiary") for v in caught.value.violations)


def test_late_documents_are_not_yet_downloadable(
    client: KorusClient, catalog: dict[str, Any]
) -> None:
    order = order_one(client, catalog["Late Documents Tour"], "BW-LATE-DOCS")
    (document,) = client.list_documents(order.iri or "")
    assert document.downloadable_at is not None
    assert document.downloadable_at > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)

    with pytest.raises(KorusRejectedError) as caught:
        client.get_document_url(order.id or "", document.id or "")

    assert caught.value.not_yet_downloadable
