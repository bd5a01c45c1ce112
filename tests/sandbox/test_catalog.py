"""Discovering the seeded catalog through the ordinary Korus catalog endpoints."""

from __future__ import annotations

from typing import Any

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.server import SandboxConfig, start_sandbox
from tests.sandbox.helpers import KorusApi

PRODUCTS = {
    "Day Pass": "40.00",
    "Timed Museum Entry": "25.00",
    "Limited Concert": "80.00",
    "Named Festival Pass": "120.00",
    "Late Documents Tour": "30.00",
    "Broken Subsystem Ride": "50.00",
    "Guided Tour With Form": "15.00",
    "Park And Show Bundle": "80.00",
}


def _offers(korus: KorusApi) -> tuple[str, list[dict[str, Any]]]:
    catalogs = korus.get("/v1/ticketing/catalogs").json()
    assert catalogs["@type"] == "Collection"
    assert [c["name"] for c in catalogs["member"]] == ["Sandbox Parks"]
    catalog_iri = catalogs["member"][0]["@id"]
    offers = korus.get(f"{catalog_iri}/offers", params={"itemsPerPage": 50}).json()
    return catalog_iri, offers["member"]


def test_every_product_is_discoverable_with_its_price(korus: KorusApi) -> None:
    _, offers = _offers(korus)
    assert {o["product"]["name"]: o["price"]["amountInclTax"] for o in offers} == PRODUCTS
    for offer in offers:
        assert offer["price"]["currency"] == "eur"
        assert offer["@id"].endswith("/offers/" + offer["id"])
        assert offer["date"].endswith("+00:00")
        assert offer["tickets"] and {"dateAccess", "form"} <= set(offer["tickets"][0])


def test_admin_catalog_keys_name_the_same_offers(korus: KorusApi, admin: SandboxAdmin) -> None:
    _, offers = _offers(korus)
    assert admin.catalog_keys() == {o["product"]["name"]: o["@id"] for o in offers}


def test_tickets_sessions_availability_and_price(
    korus: KorusApi, catalog: dict[str, dict[str, Any]]
) -> None:
    museum = catalog["Timed Museum Entry"]
    tickets = korus.get(museum["offer"] + "/tickets").json()["member"]
    assert [t["dateAccess"] for t in tickets] == [False]
    ticket = korus.get(museum["tickets"][0]).json()
    assert ticket["@id"] == museum["tickets"][0]
    sessions = korus.get(museum["tickets"][0] + "/sessions").json()["member"]
    assert [s["availableQuantity"] for s in sessions] == [500] * 4
    assert [s["@id"] for s in sessions] == museum["sessions"]
    availability = korus.get(museum["offer"] + "/availability").json()
    assert availability["availableQuantity"] == 2000
    assert len(availability["sessionsAvailability"]) == 4
    price = korus.get(museum["offer"] + "/price").json()
    assert price == {**price, "amountInclTax": "25.00", "currency": "eur"}
    assert (
        korus.get(catalog["Limited Concert"]["offer"] + "/availability").json()["availableQuantity"]
        == 5
    )


def test_the_form_names_its_required_field(
    korus: KorusApi, catalog: dict[str, dict[str, Any]]
) -> None:
    form = korus.get(catalog["Guided Tour With Form"]["form"]).json()
    assert form["@type"] == "Form"
    assert [(f["label"], f["required"]) for f in form["fields"]] == [("Visitor last name", True)]
    assert form["fields"][0]["@id"] == catalog["Guided Tour With Form"]["form_fields"][0]


def test_offer_filters_and_paging(korus: KorusApi, catalog: dict[str, dict[str, Any]]) -> None:
    catalog_iri, offers = _offers(korus)
    by_name = korus.get(f"{catalog_iri}/offers", params={"product[]": "Limited Concert"}).json()
    assert [o["product"]["name"] for o in by_name["member"]] == ["Limited Concert"]
    latest = max(o["date"] for o in offers)
    after = korus.get(f"{catalog_iri}/offers", params={"date[after]": latest}).json()
    assert [o["date"] for o in after["member"]] == [latest]
    session = catalog["Timed Museum Entry"]["sessions"][2]
    by_session = korus.get(f"{catalog_iri}/offers", params={"session": session}).json()
    assert [o["product"]["name"] for o in by_session["member"]] == ["Timed Museum Entry"]
    page = korus.get(f"{catalog_iri}/offers", params={"itemsPerPage": 3, "page": 2}).json()
    assert page["totalItems"] == 8
    assert len(page["member"]) == 3
    assert "next" in page["view"] and "previous" in page["view"]
    for bad in ({"itemsPerPage": 51}, {"page": 0}, {"page": "x"}, {"date[after]": "soon"}):
        response = korus.get(f"{catalog_iri}/offers", params=bad)
        assert response.status_code == 400, bad
        assert response.json()["@type"] == "Error"


def test_unknown_catalog_or_offer_is_a_404(korus: KorusApi, catalog: dict[str, Any]) -> None:
    assert korus.get("/v1/ticketing/catalogs/nope/offers").status_code == 404
    assert korus.get(catalog["Day Pass"]["offer"] + "x/price").status_code == 404
    assert korus.get("/v1/forms/nope").status_code == 404


def test_same_seed_same_ids_other_seed_other_ids() -> None:
    def keys(seed: int) -> dict[str, str]:
        with start_sandbox(SandboxConfig(seed=seed)) as sb, SandboxAdmin(sb.url) as admin:
            return admin.catalog_keys()

    assert keys(7) == keys(7)
    assert keys(7) != keys(8)
