"""The read side against the sandbox: catalogs, offers, tickets, sessions, forms."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from worker.korus import KorusClient, KorusNotFoundError, Offer


def _catalog_id(client: KorusClient) -> str:
    (catalog,) = client.list_catalogs()
    assert catalog.id is not None
    return catalog.id


def test_list_catalogs_gives_the_seeded_catalog(client: KorusClient) -> None:
    (catalog,) = client.list_catalogs()
    assert catalog.name == "Sandbox Parks"
    assert catalog.iri == f"/v1/ticketing/catalogs/{catalog.id}"
    assert catalog.created_at is not None and catalog.created_at.tzinfo is not None


def test_all_offers_walks_every_page(client: KorusClient, catalog: dict[str, Any]) -> None:
    offers = client.all_offers(_catalog_id(client))

    by_name = {offer.product.name: offer for offer in offers if offer.product}
    assert set(by_name) == set(catalog)
    concert = by_name["Limited Concert"]
    assert concert.iri == catalog["Limited Concert"]["offer"]
    assert concert.price is not None and concert.price.amount_incl_tax == Decimal("80.00")
    assert concert.available_quantity == 5 and concert.availability_check_required
    assert concert.tickets[0].date_access is True


def test_list_offers_pages_and_filters(client: KorusClient, catalog: dict[str, Any]) -> None:
    catalog_id = _catalog_id(client)

    first = client.list_offers(catalog_id, items_per_page=3)
    third = client.list_offers(catalog_id, page=3, items_per_page=3)
    assert first.total_items == len(catalog) == 8
    assert len(first.member) == 3 and first.next_iri is not None
    assert len(third.member) == 2 and third.next_iri is None

    by_name = client.list_offers(catalog_id, products=["Day Pass", "Limited Concert"])
    assert {o.product.name for o in by_name.member if o.product} == {"Day Pass", "Limited Concert"}

    dates = sorted(_day(offer) for offer in client.all_offers(catalog_id))
    window = client.list_offers(catalog_id, date_after=dates[1], date_before=dates[2])
    assert sorted(_day(offer) for offer in window.member) == dates[1:3]

    museum_session = catalog["Timed Museum Entry"]["sessions"][0]
    with_session = client.list_offers(catalog_id, session=museum_session)
    assert [o.iri for o in with_session.member] == [catalog["Timed Museum Entry"]["offer"]]


def _day(offer: Offer) -> dt.date:
    assert offer.date is not None and offer.date.tzinfo is not None
    return offer.date.date()


def test_tickets_sessions_availability_and_price(
    client: KorusClient, catalog: dict[str, Any]
) -> None:
    museum = catalog["Timed Museum Entry"]
    catalog_id, offer = _catalog_id(client), museum["offer"]

    (ticket,) = client.list_tickets(catalog_id, offer)
    assert ticket.iri == museum["tickets"][0] and ticket.date_access is False
    assert client.get_ticket(catalog_id, offer, ticket.iri or "").name == ticket.name
    sessions = client.list_sessions(catalog_id, offer, ticket.id or "")
    assert [s.iri for s in sessions] == museum["sessions"]
    assert all(s.starts_at and s.starts_at.tzinfo and s.available_quantity for s in sessions)

    availability = client.get_availability(catalog_id, offer)
    assert {a.session for a in availability.sessions_availability} == set(museum["sessions"])
    price = client.get_price(catalog_id, offer)
    assert price.amount_incl_tax == Decimal("25.00") and price.currency == "eur"


def test_get_form_lists_its_fields(client: KorusClient, catalog: dict[str, Any]) -> None:
    tour = catalog["Guided Tour With Form"]

    form = client.get_form(tour["form"])

    assert form.iri == tour["form"]
    assert [field.iri for field in form.fields] == tour["form_fields"]
    assert form.fields[0].required


def test_unknown_resources_are_not_found(client: KorusClient, catalog: dict[str, Any]) -> None:
    catalog_id = _catalog_id(client)
    missing = "01940000-0000-7000-8000-000000000000"

    with pytest.raises(KorusNotFoundError) as caught:
        client.get_ticket(catalog_id, catalog["Day Pass"]["offer"], missing)
    assert caught.value.status == 404 and caught.value.method == "GET"
    with pytest.raises(KorusNotFoundError):
        client.get_order(missing)
    with pytest.raises(KorusNotFoundError):
        client.get_reservation(missing)
