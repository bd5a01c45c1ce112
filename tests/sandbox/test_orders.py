"""Orders: one per reservation, never two; expiry; validation; listing by reference."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.errors import SANDBOX_ALREADY_ORDERED_CODE
from tests.sandbox.helpers import KorusApi, violation_paths
from tests.support.booking import CUSTOMER
from tests.support.waits import wait_until

Catalog = dict[str, dict[str, Any]]


def test_an_order_is_made_per_reservation_and_linked_back(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    first = korus.reserve_one(catalog["Day Pass"], quantity=2)
    second = korus.reserve_one(catalog["Limited Concert"])
    response = korus.order(
        [first["@id"], second["@id"]],
        "SHOP-42",
        {**CUSTOMER, "phone": "+33600000000", "optin": False},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "failedOrders" not in body  # as in the documented answer, when nothing failed
    orders = body["orders"]
    assert [o["reservation"] for o in orders] == [first["@id"], second["@id"]]
    order = orders[0]
    assert order["@id"] == f"/v1/booking/orders/{order['id']}"
    assert re.fullmatch(r"KT-ORD-[0-9A-F]{13}", order["reference"])
    assert order["externalReference"] == "SHOP-42"
    assert order["totalAmountInclTax"] == "80.00"
    assert order["customer"] == []  # the documented answer; no personal data echoed
    (answered,) = order["items"]
    assert answered["@id"].startswith("/.well-known/genid/") and "id" not in answered
    assert all(t["@id"].startswith("/.well-known/genid/") for t in answered["tickets"])
    fetched = korus.get(order["@id"]).json()
    assert fetched["status"] == "confirmed"
    (line,) = fetched["items"]
    assert line["@id"] == f"{order['@id']}/items/{line['id']}"
    assert len(line["tickets"]) == 2
    for ticket in line["tickets"]:
        assert ticket["@id"] == f"{line['@id']}/tickets/{ticket['id']}"
        assert ticket["voucher"]
        assert ticket["status"] == "validated"
        assert ticket["requiredBeneficiaryFields"] == []
        assert ticket["seating"] is None
        assert ticket["occursAt"] is None  # a date-access ticket, as documented
    assert len(order["documents"]) == 2
    assert all(d.startswith(f"{order['@id']}/documents/") for d in order["documents"])
    assert orders[1]["items"][0]["tickets"][0]["seating"]["seatNumber"]
    assert korus.get(first["@id"]).json()["order"] == order["@id"]
    assert korus.get(order["@id"]).json()["reference"] == order["reference"]
    assert len(admin.orders()) == 2


def test_an_expired_reservation_cannot_be_ordered(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    admin.configure(hold_seconds=0.3)
    reservation = korus.reserve_one(catalog["Day Pass"])
    assert wait_until(lambda: bool(korus.get(reservation["@id"]).json()["expired"]), timeout=5)
    response = korus.order([reservation["@id"]])
    assert response.status_code == 422
    assert response.json()["violations"] == [
        {
            "propertyPath": "reservations[0].expired",
            "message": "La réservation a expiré",
            "code": "d53a91b0-def3-426a-83d7-269da7ab4200",
        }
    ]
    assert admin.orders() == []


def test_a_reservation_is_never_ordered_twice(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    reservation = korus.reserve_one(catalog["Day Pass"])
    fresh = korus.reserve_one(catalog["Day Pass"])
    assert korus.order([reservation["@id"]]).status_code == 200
    again = korus.order([fresh["@id"], reservation["@id"]])
    assert again.status_code == 422
    (violation,) = again.json()["violations"]
    assert violation["propertyPath"] == "reservations[1].sandboxAlreadyOrdered"
    assert violation["code"] == SANDBOX_ALREADY_ORDERED_CODE
    assert violation["message"].startswith("[sandbox rule]")
    assert len(admin.orders()) == 1  # the whole call was refused: `fresh` is not ordered
    assert korus.get(fresh["@id"]).json()["order"] is None


def test_racing_order_calls_make_exactly_one_order(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin, sandbox: Any
) -> None:
    reservation = korus.reserve_one(catalog["Day Pass"])
    token = korus.session.headers["Authorization"].split()[1]
    statuses: list[int] = []
    start = threading.Barrier(8)

    def order() -> None:
        client = KorusApi(sandbox.url, str(token))
        start.wait(timeout=5)
        statuses.append(client.order([reservation["@id"]]).status_code)

    threads = [threading.Thread(target=order) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(statuses) == [200] + [422] * 7
    assert len(admin.orders()) == 1


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"customer": {**CUSTOMER, "email": ""}}, "customer.email"),
        ({"customer": {**CUSTOMER, "email": "not-an-email"}}, "customer.email"),
        ({"customer": {"email": "a@b.co"}}, "customer.firstname"),
        ({"customer": None}, "customer"),
        ({"externalReference": ""}, "externalReference"),
        ({"externalReference": "x" * 256}, "externalReference"),
        ({"reservations": []}, "reservations"),
        ({"reservations": ["/v1/booking/reservations/nope"]}, "reservations[0]"),
        (
            {"reservations": ["/v1/booking/orders/0190f0f0-0000-7000-8000-000000000000"]},
            "reservations[0]",
        ),
    ],
)
def test_invalid_order_calls_are_422(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin, change: dict[str, Any], path: str
) -> None:
    reservation = korus.reserve_one(catalog["Day Pass"])
    body = {
        "reservations": [reservation["@id"]],
        "customer": CUSTOMER,
        "externalReference": "REF",
        **change,
    }
    response = korus.post("/v1/booking/orders/_bulk", body)
    assert response.status_code == 422, response.text
    assert path in violation_paths(response)
    assert admin.orders() == []


def test_listing_twice_the_same_reservation_is_refused(korus: KorusApi, catalog: Catalog) -> None:
    reservation = korus.reserve_one(catalog["Day Pass"])
    response = korus.order([reservation["@id"], reservation["@id"]])
    assert violation_paths(response) == ["reservations[1]"]


@pytest.mark.parametrize(
    "body",
    [
        {"reservations": "x", "customer": CUSTOMER, "externalReference": "R"},
        {"reservations": [1], "customer": CUSTOMER, "externalReference": "R"},
        {"reservations": [], "customer": "Ada", "externalReference": "R"},
        {"reservations": [], "customer": {**CUSTOMER, "optin": "yes"}, "externalReference": "R"},
        {"reservations": [], "customer": CUSTOMER, "externalReference": 5},
        [],
    ],
)
def test_wrong_json_types_are_400(korus: KorusApi, body: Any) -> None:
    response = korus.post("/v1/booking/orders/_bulk", body)
    assert response.status_code == 400
    assert response.json()["@type"] == "Error"


def test_orders_are_listed_by_external_reference(korus: KorusApi, catalog: Catalog) -> None:
    first = korus.order_one(catalog["Day Pass"], "BOOKING-1")
    second = korus.order_one(catalog["Day Pass"], "BOOKING-1")
    other = korus.order_one(catalog["Day Pass"], "BOOKING-2")
    listing = korus.get("/v1/booking/orders", params={"external_reference": "BOOKING-1"}).json()
    assert listing["@type"] == "Collection"
    assert listing["totalItems"] == 2
    assert [o["id"] for o in listing["member"]] == [first["id"], second["id"]]
    everything = korus.get("/v1/booking/orders").json()
    assert other["id"] in [o["id"] for o in everything["member"]]
    none = korus.get("/v1/booking/orders", params={"external_reference": "NOBODY"}).json()
    assert none["totalItems"] == 0
    for bad in ("", "x" * 51):
        response = korus.get("/v1/booking/orders", params={"external_reference": bad})
        assert response.status_code == 422
        assert violation_paths(response) == ["external_reference"]


def test_unknown_order_is_404(korus: KorusApi) -> None:
    assert korus.get("/v1/booking/orders/0190f0f0-0000-7000-8000-000000000000").status_code == 404
