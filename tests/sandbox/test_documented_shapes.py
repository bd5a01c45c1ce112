"""Contract: the sandbox answers in the documented shapes (keys, nesting, JSON types).

Each test plays one step of the documented exchange ("Book a ticket", then the order's
documents) against the sandbox with the seeded bundle offer shaped like the documented
one, and compares the answer with its example in `korus-examples/` (copied verbatim into
tests/support/korus_examples). Any drift fails with the paths that differ.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.server import Sandbox, SandboxConfig, start_sandbox
from tests.sandbox.helpers import KorusApi
from tests.support.booking import reservation_item as item
from tests.support.shapes import drift, example

Catalog = dict[str, dict[str, Any]]
BUNDLE = "Park And Show Bundle"


def documented_customer() -> dict[str, Any]:
    return dict(example("orders-bulk.request.json")["customer"])


def reserve_bundle(korus: KorusApi, catalog: Catalog) -> dict[str, Any]:
    response = korus.reserve([item(catalog[BUNDLE])])
    assert response.status_code == 201, response.text
    return dict(response.json())


def order(korus: KorusApi, reservation_iri: str, reference: str = "SHAPES-1") -> Any:
    return korus.order([reservation_iri], reference, documented_customer())


def test_the_drift_check_sees_a_changed_shape() -> None:
    documented = example("orders-bulk.200.json")
    assert drift([documented], documented) == []
    changed = copy.deepcopy(documented)
    changed["orders"][0]["customer"] = {"email": "x@example.com"}
    del changed["orders"][0]["items"][0]["tickets"][1]["seating"]["gate"]
    changed["orders"][0]["items"][0]["tickets"][0]["id"] = "0194"
    assert drift([documented], changed) == [
        "$.orders[0].customer: object, documented array",
        "$.orders[0].items[0].tickets[0]: undocumented key 'id'",
        "$.orders[0].items[0].tickets[1].seating: missing key 'gate'",
    ]


def test_the_bundle_request_is_shaped_like_the_documented_one(catalog: Catalog) -> None:
    documented = example("reservations-bulk.request.json")
    ours = {"items": [item(catalog[BUNDLE])]}
    assert drift([documented], ours) == []
    # Two tickets, the first without a session, the second with one, as documented.
    tickets = ours["items"][0]["ticketSessions"]
    assert [("session" in t) for t in tickets] == [False, True]


def test_reservations_bulk_answer_has_the_documented_shape(
    korus: KorusApi, catalog: Catalog
) -> None:
    assert drift([example("reservations-bulk.201.json")], reserve_bundle(korus, catalog)) == []


def test_orders_bulk_answer_has_the_documented_shape(korus: KorusApi, catalog: Catalog) -> None:
    reservation = reserve_bundle(korus, catalog)["reservations"][0]
    answer = order(korus, reservation["@id"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert drift([example("orders-bulk.200.json")], body) == []
    tickets = body["orders"][0]["items"][0]["tickets"]
    # Not only the types: the documented specifics of this answer hold too.
    assert body["orders"][0]["customer"] == []
    assert [t["occursAt"] is None for t in tickets] == [True, False]
    assert [t["seating"] is None for t in tickets] == [True, False]
    assert all(t["@id"].startswith("/.well-known/genid/") for t in tickets)


def test_expired_reservation_answer_has_the_documented_shape(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    admin.configure(hold_seconds=0.5)
    reservation = reserve_bundle(korus, catalog)["reservations"][0]
    time.sleep(0.8)
    answer = order(korus, reservation["@id"])
    assert answer.status_code == 422
    documented = example("orders-bulk.422-expired.json")
    assert drift([documented], answer.json()) == []
    assert answer.json()["violations"] == documented["violations"]


def test_document_listing_and_url_have_the_documented_shapes(
    korus: KorusApi, catalog: Catalog
) -> None:
    reservation = reserve_bundle(korus, catalog)["reservations"][0]
    placed = order(korus, reservation["@id"]).json()["orders"][0]
    listing = korus.get(placed["@id"] + "/documents")
    assert listing.status_code == 200, listing.text
    assert drift([example("order-documents.200.json")], listing.json()) == []
    document = listing.json()["member"][0]
    assert [m["@id"] for m in listing.json()["member"]] == placed["documents"]

    single = korus.get(document["@id"])
    assert single.status_code == 200, single.text
    assert drift([example("order-documents.200.json")["member"][0]], _member(single.json())) == []

    link = korus.patch(document["@id"], {}, headers={"Accept-Language": "de"})
    assert link.status_code == 200, link.text
    assert drift([example("order-document.patch.200.json")], link.json()) == []
    assert link.json()["cachedLanguage"] == "de"
    assert "Expires=" in link.json()["temporaryUrl"]


def _member(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != "@context"}


@pytest.fixture
def varied_korus() -> Any:
    from tests.sandbox.helpers import fetch_token

    with start_sandbox(SandboxConfig(port=0, shapes="varied", seed=3)) as sb:
        yield sb, KorusApi(sb.url, fetch_token(sb.token_url))


def test_varied_shapes_vary_only_in_tolerated_ways(varied_korus: tuple[Sandbox, KorusApi]) -> None:
    sb, korus = varied_korus
    with SandboxAdmin(sb.url) as admin:
        catalog = admin.catalog()
    seen: set[str] = set()
    for n in range(12):
        body = reserve_bundle(korus, catalog)
        reservation = body["reservations"][0]
        placed = order(korus, reservation["@id"], f"VARIED-{n}").json()["orders"][0]
        listing = korus.get(placed["@id"] + "/documents").json()
        seen.update(k for k in listing if k.startswith("hydra:"))
        if "customer" not in placed:
            seen.add("customer missing")
        else:
            seen.add(f"customer {type(placed['customer']).__name__}")
        if not reservation["expiresAt"].endswith("+00:00"):
            seen.add("offset")
        if "sandboxUnknownField" in body:
            seen.add("unknown field")
        # What identifies or counts never varies.
        assert placed["documents"] and reservation["@id"].startswith("/v1/booking/reservations/")
    assert {"hydra:member", "offset", "unknown field", "customer list"} <= seen
    assert {"customer NoneType", "customer dict", "customer missing"} & seen
