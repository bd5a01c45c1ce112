"""The documented Korus exchange, end to end, the way a shop meets it.

The documented booking request (korus-examples: one bundle offer, `quantity: 1`, two
tickets, the second with a session) goes through the merchant API of a real gunicorn;
the booking is paid through a signed Stripe webhook; a real Celery worker reserves,
orders once and fetches the documents from a sandbox answering in the documented shapes
(and, second run, in the varied ones). It ends with a document URL that downloads a PDF.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import redis
import requests

from korus_sandbox.admin import SandboxAdmin
from tests.http.helpers import (
    WebServer,
    merchant_session,
    payment_intent,
    store_for,
    stripe_body,
    stripe_headers,
)
from tests.support.booking import wait_for_state
from tests.support.shapes import drift, example

BUNDLE = "Park And Show Bundle"


def documented_items(catalog: dict[str, Any]) -> list[dict[str, Any]]:
    """The documented request's items, its Korus IRIs swapped for the sandbox's bundle."""
    documented = example("reservations-bulk.request.json")
    ours = catalog[BUNDLE]
    entry, show = ours["offerTickets"]
    (item,) = documented["items"]
    swap = {
        item["offer"]: ours["offer"],
        item["ticketSessions"][0]["ticket"]: entry["ticket"],
        item["ticketSessions"][1]["ticket"]: show["ticket"],
        item["ticketSessions"][1]["session"]: show["sessions"][0],
    }
    text = json.dumps(documented["items"])
    for old in sorted(swap, key=len, reverse=True):  # the offer IRI prefixes the others
        text = text.replace(old, swap[old])
    items: list[dict[str, Any]] = json.loads(text)
    assert drift([documented["items"]], items) == []  # the same request, shape for shape
    return items


def test_the_documented_exchange_completes_with_one_order_and_a_document(
    web_and_worker: WebServer, admin: SandboxAdmin, redis_url: str
) -> None:
    admin.reset()
    web = web_and_worker
    customer = example("orders-bulk.request.json")["customer"]
    body = {
        "externalReference": f"DOC-{time.time_ns()}"[:50],
        "items": documented_items(admin.catalog()),
        "customer": customer,
        "language": "fr",
    }
    with merchant_session() as api:
        created = api.post(web.url + "/v1/bookings", json=body, timeout=20)
        assert created.status_code in (201, 202), created.text
        url = web.url + created.headers["Location"]
        held = wait_for_state(api, url, {"awaiting_payment", "reservation_failed"}, 30)
        assert held["state"] == "awaiting_payment", held["timeline"]
        assert Decimal(held["totalAmountInclTax"]) == Decimal(admin.catalog()[BUNDLE]["price"])

        amount = int(Decimal(held["totalAmountInclTax"]) * 100)
        event = stripe_body(
            "payment_intent.succeeded",
            payment_intent(held["id"], amount=amount, currency=held["currency"]),
            f"evt_doc_{time.time_ns()}",
        )
        paid = requests.post(
            web.url + "/webhooks/stripe", data=event, headers=stripe_headers(event), timeout=10
        )
        assert paid.status_code == 200 and paid.json()["outcome"] == "enqueued", paid.text
        done = wait_for_state(api, url, {"completed", "refund_required"}, 60)

    assert done["state"] == "completed", done["timeline"]
    orders = [o for o in admin.orders() if o["externalReference"] == held["id"]]
    assert len(orders) == 1 and len(done["orders"]) == 1
    assert len(done["orders"][0]["tickets"]) == 2  # one unit of a two-ticket bundle
    assert len(done["documents"]) == 2 and all(d["temporaryUrl"] for d in done["documents"])
    pdf = requests.get(done["documents"][0]["temporaryUrl"], timeout=10)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # Documents were asked for in the booking's language, and Korus said which it used.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        stored = store_for(client).load(held["id"])
    finally:
        client.close()
    assert stored is not None
    assert [d.cached_language for d in stored.documents] == ["fr", "fr"]
