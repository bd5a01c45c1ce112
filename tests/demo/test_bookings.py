"""The demo's booking mix: bodies the merchant API accepts, bundles by the request rule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.server import SandboxConfig, start_sandbox
from worker.booking.requests import BookingRequest
from worker.demo.bookings import LATE_DOCUMENTS, NAMED_PASS, demo_bodies, demo_products

BUNDLE = "/v1/ticketing/catalogs/c1/offers/b1"
FIRST, SECOND = f"{BUNDLE}/tickets/t1", f"{BUNDLE}/tickets/t2"
SESSIONS = [f"{SECOND}/sessions/s1", f"{SECOND}/sessions/s2"]


@pytest.fixture(scope="module")
def seeded_catalog() -> Iterator[dict[str, dict[str, Any]]]:
    with start_sandbox(SandboxConfig(host="127.0.0.1", port=0)) as sandbox:
        with SandboxAdmin(sandbox.url) as admin:
            yield admin.catalog()


def with_bundle(catalog: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    bundle = {"offer": BUNDLE, "tickets": [FIRST, SECOND], "sessions": SESSIONS}
    return {**catalog, "Family Bundle": bundle}


def test_every_body_built_from_the_seeded_catalog_is_a_valid_booking_request(
    seeded_catalog: dict[str, dict[str, Any]],
) -> None:
    bodies = demo_bodies(seeded_catalog, 10, "t")

    names = {product.name for product, _ in bodies}
    assert LATE_DOCUMENTS in names and NAMED_PASS in names
    assert len(names) == len(demo_products(seeded_catalog))  # each product at least once
    for _, body in bodies:
        BookingRequest.model_validate(body)
    references = [body["externalReference"] for _, body in bodies]
    assert len(set(references)) == 10


def test_a_bundle_gets_one_entry_per_ticket_of_the_offer_for_each_unit_in_ticket_order(
    seeded_catalog: dict[str, dict[str, Any]],
) -> None:
    products = {p.name: p for p in demo_products(with_bundle(seeded_catalog))}
    bundle = products["Family Bundle"]

    assert bundle.item(1) == {
        "offer": BUNDLE,
        "quantity": 1,
        "ticketSessions": [{"ticket": FIRST}, {"ticket": SECOND, "session": SESSIONS[0]}],
    }
    assert [e["ticket"] for e in bundle.item(2)["ticketSessions"]] == [FIRST, SECOND] * 2


def test_the_bundle_joins_the_mix_and_beneficiaries_match_the_tickets(
    seeded_catalog: dict[str, dict[str, Any]],
) -> None:
    bodies = demo_bodies(with_bundle(seeded_catalog), 12, "t")

    assert "Family Bundle" in {product.name for product, _ in bodies}
    for product, body in bodies:
        if product.name == NAMED_PASS:
            assert len(body["beneficiaries"]) == len(body["items"][0]["ticketSessions"])


def test_a_catalog_without_the_late_documents_product_is_refused(
    seeded_catalog: dict[str, dict[str, Any]],
) -> None:
    catalog = {k: v for k, v in seeded_catalog.items() if k != LATE_DOCUMENTS}

    with pytest.raises(ValueError, match=LATE_DOCUMENTS):
        demo_products(catalog)
