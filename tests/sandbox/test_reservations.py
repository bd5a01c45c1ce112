"""Reservations: happy paths, the consistency check, failed sub-systems, expiry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from tests.sandbox.helpers import KorusApi, violation_paths
from tests.support.booking import reservation_item as item
from tests.support.waits import wait_until

Catalog = dict[str, dict[str, Any]]
RESERVABLE = [
    ("Day Pass", "40.00"),
    ("Timed Museum Entry", "25.00"),
    ("Limited Concert", "80.00"),
    ("Named Festival Pass", "120.00"),
    ("Late Documents Tour", "30.00"),
    ("Guided Tour With Form", "15.00"),
]


@pytest.mark.parametrize(("product", "price"), RESERVABLE)
def test_each_product_can_be_reserved_and_holds_its_inventory(
    korus: KorusApi, catalog: Catalog, product: str, price: str
) -> None:
    entry = catalog[product]
    before = korus.available(entry)
    reservation = korus.reserve_one(entry, quantity=2)
    assert reservation["@type"] == "BookingReservation"
    assert reservation["@id"] == f"/v1/booking/reservations/{reservation['id']}"
    assert reservation["id"][14] == "7"  # UUID version 7
    assert reservation["expired"] is False
    assert reservation["order"] is None
    created = datetime.fromisoformat(reservation["createdAt"])
    expires = datetime.fromisoformat(reservation["expiresAt"])
    assert 899 <= (expires - created).total_seconds() <= 900
    assert reservation["expiresAt"].endswith("+00:00")
    assert reservation["totalAmountInclTax"] == f"{float(price) * 2:.2f}"
    (line,) = reservation["items"]
    assert line["offer"] == entry["offer"]
    assert line["product"].startswith(entry["offer"].split("/offers/")[0] + "/products/")
    assert line["unitAmountInclTax"] == price
    assert len(line["offerTickets"]) == 2
    assert korus.available(entry) == before - 2
    fetched = korus.get(reservation["@id"]).json()
    assert fetched["id"] == reservation["id"]
    assert fetched["status"] == "reserved"
    assert fetched["@context"]


def test_sessions_hold_per_session_inventory(korus: KorusApi, catalog: Catalog) -> None:
    museum = catalog["Timed Museum Entry"]
    korus.reserve([item(museum, 3, session=1)])
    sessions = korus.get(museum["tickets"][0] + "/sessions").json()["member"]
    assert [s["availableQuantity"] for s in sessions] == [500, 497, 500, 500]


def test_a_broken_sub_system_gives_failed_items_not_a_reservation(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    response = korus.reserve([item(catalog["Broken Subsystem Ride"]), item(catalog["Day Pass"])])
    assert response.status_code == 201
    body = response.json()
    offers = [r["items"][0]["offer"] for r in body["reservations"]]
    assert offers == [catalog["Day Pass"]["offer"]]
    (failed,) = body["failedReservations"]
    assert failed["offer"] == catalog["Broken Subsystem Ride"]["offer"]
    assert failed["quantity"] == 1
    assert failed["code"] == "subsystem_error"
    assert failed["message"]
    all_failed = korus.reserve([item(catalog["Broken Subsystem Ride"])])
    assert all_failed.status_code == 201
    assert all_failed.json()["reservations"] == []
    assert [r["product"] for r in admin.reservations()] == ["Day Pass"]


def test_each_item_is_its_own_reservation(korus: KorusApi, catalog: Catalog) -> None:
    body = korus.reserve([item(catalog["Day Pass"]), item(catalog["Day Pass"], 2)]).json()
    assert len({r["id"] for r in body["reservations"]}) == 2
    assert [len(r["items"][0]["offerTickets"]) for r in body["reservations"]] == [1, 2]


def test_seated_tickets_get_distinct_seats(korus: KorusApi, catalog: Catalog) -> None:
    reserved = korus.reserve_one(catalog["Limited Concert"], quantity=3)
    reservation = korus.get(reserved["@id"]).json()
    seats = [t["seating"]["seatNumber"] for t in reservation["items"][0]["offerTickets"]]
    assert len(set(seats)) == 3


def _no_session(catalog: Catalog) -> dict[str, Any]:
    broken = item(catalog["Timed Museum Entry"])
    del broken["ticketSessions"][0]["session"]
    return broken


def _bad_offer(catalog: Catalog) -> dict[str, Any]:
    return {**item(catalog["Day Pass"]), "offer": "/v1/ticketing/catalogs/x/offers/y"}


def _bad_session(catalog: Catalog) -> dict[str, Any]:
    broken = item(catalog["Timed Museum Entry"])
    broken["ticketSessions"][0]["session"] = catalog["Timed Museum Entry"]["sessions"][0] + "0"
    return broken


def _mismatch(catalog: Catalog) -> dict[str, Any]:
    return {**item(catalog["Day Pass"], 2), "quantity": 3}


def _foreign_ticket(catalog: Catalog) -> dict[str, Any]:
    broken = item(catalog["Day Pass"])
    broken["ticketSessions"][0]["ticket"] = catalog["Limited Concert"]["tickets"][0]
    return broken


@pytest.mark.parametrize(
    ("build", "path"),
    [
        (_no_session, "items[0].ticketSessions[0].session"),
        (_bad_session, "items[0].ticketSessions[0].session"),
        (_bad_offer, "items[0].offer"),
        (_foreign_ticket, "items[0].ticketSessions[0].ticket"),
        (_mismatch, "items[0].quantity"),
        (lambda c: item(c["Limited Concert"], 6), "items[0].quantity"),
        (
            lambda c: item(c["Guided Tour With Form"], form_value=None),
            "items[0].ticketSessions[0].formData",
        ),
        (
            lambda c: item(c["Guided Tour With Form"], form_value=" "),
            "items[0].ticketSessions[0].formData.fields",
        ),
        (
            lambda c: {"offer": c["Day Pass"]["offer"], "quantity": 0, "ticketSessions": []},
            "items[0].quantity",
        ),
    ],
    ids=[
        "missing-session",
        "foreign-session",
        "bad-offer-iri",
        "foreign-ticket",
        "quantity-mismatch",
        "above-availability",
        "missing-form",
        "blank-form-field",
        "zero-quantity",
    ],
)
def test_the_consistency_check_refuses_the_whole_call_and_holds_nothing(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin, build: Any, path: str
) -> None:
    response = korus.reserve([item(catalog["Day Pass"]), build(catalog)])
    assert response.status_code == 422, response.text
    shifted = path.replace("items[0]", "items[1]")
    assert shifted in violation_paths(response)
    body = response.json()
    assert all(v["code"] and v["message"] for v in body["violations"])
    assert {"detail", "description", "type", "title"} <= set(body)
    assert admin.reservations() == []
    assert korus.available(catalog["Day Pass"]) == 1_000_000


def test_availability_is_counted_over_the_whole_call(korus: KorusApi, catalog: Catalog) -> None:
    concert = catalog["Limited Concert"]
    response = korus.reserve([item(concert, 3), item(concert, 3)])
    assert violation_paths(response) == ["items[1].quantity"]
    assert korus.available(concert) == 5


def test_missing_values_are_422_and_wrong_types_are_400(korus: KorusApi, catalog: Catalog) -> None:
    assert violation_paths(korus.post("/v1/booking/reservations/_bulk", {})) == ["items"]
    assert violation_paths(korus.reserve([])) == ["items"]
    missing = korus.reserve([{"quantity": 1, "ticketSessions": [{}]}])
    assert set(violation_paths(missing)) == {"items[0].offer", "items[0].ticketSessions[0].ticket"}
    wrongs: list[list[Any]] = [
        [{**item(catalog["Day Pass"]), "quantity": "1"}],
        [{**item(catalog["Day Pass"]), "ticketSessions": {}}],
        ["x"],
    ]
    for wrong in wrongs:
        response = korus.reserve(wrong)
        assert response.status_code == 400, wrong
        assert response.json()["@type"] == "Error"


def test_a_lapsed_hold_is_released_and_gives_its_inventory_back(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    admin.configure(hold_seconds=0.5)
    concert = catalog["Limited Concert"]
    reservation = korus.reserve_one(concert, quantity=5)
    assert korus.available(concert) == 0
    assert korus.reserve([item(concert)]).status_code == 422

    def released() -> bool:
        return bool(korus.get(reservation["@id"]).json()["expired"])

    assert wait_until(released, timeout=5)
    lapsed = korus.get(reservation["@id"]).json()
    assert lapsed["status"] == "released"
    assert korus.available(concert) == 5
    assert korus.reserve_one(concert, quantity=5)["expired"] is False


def test_reservations_are_listed_and_unknown_ones_are_404(
    korus: KorusApi, catalog: Catalog
) -> None:
    for _ in range(3):
        korus.reserve_one(catalog["Day Pass"])
    listing = korus.get("/v1/booking/reservations", params={"itemsPerPage": 2}).json()
    assert listing["totalItems"] == 3
    assert len(listing["member"]) == 2
    unknown = korus.get("/v1/booking/reservations/0190f0f0-0000-7000-8000-000000000000")
    assert unknown.status_code == 404
    assert unknown.json()["@type"] == "Error"
