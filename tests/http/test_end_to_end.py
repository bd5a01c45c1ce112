"""The whole product the way a shop and Stripe meet it: gunicorn, a Celery worker, the
Korus sandbox and Redis, all real processes on loopback."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import requests

from korus_sandbox.admin import SandboxAdmin
from tests.http.helpers import (
    WebServer,
    merchant_session,
    payment_intent,
    stripe_body,
    stripe_headers,
)
from tests.support.booking import request_for, wait_for_state


def test_a_booking_paid_through_a_stripe_webhook_completes_with_documents(
    web_and_worker: WebServer, admin: SandboxAdmin
) -> None:
    web = web_and_worker
    body = request_for(admin.catalog(), "Day Pass", external_reference="E2E-1")
    with merchant_session() as api:
        created = api.post(
            web.url + "/v1/bookings",
            json=body.model_dump(mode="json", by_alias=True, exclude_none=True),
            headers={"Prefer": "wait=10", "Idempotency-Key": f"e2e-{time.time_ns()}"},
            timeout=20,
        )
        assert created.status_code in (201, 202), created.text
        url = web.url + created.headers["Location"]
        held = wait_for_state(api, url, {"awaiting_payment", "reservation_failed"}, 30)
        assert held["state"] == "awaiting_payment", held["timeline"]
        assert held["totalAmountInclTax"] and held["expiresAt"] and held["reservations"]

        amount = int(Decimal(held["totalAmountInclTax"]) * 100)
        event = stripe_body(
            "payment_intent.succeeded",
            payment_intent(held["id"], amount=amount, currency=held["currency"]),
            f"evt_e2e_{time.time_ns()}",
        )
        paid = requests.post(web.url + "/webhooks/stripe", data=event,
                             headers=stripe_headers(event), timeout=10)
        assert paid.status_code == 200 and paid.json()["outcome"] == "enqueued", paid.text

        done = wait_for_state(api, url, {"completed", "refund_required"}, 45)
        again = requests.post(web.url + "/webhooks/stripe", data=event,
                              headers=stripe_headers(event), timeout=10)

    assert done["state"] == "completed", done["timeline"]
    assert done["payment"] == {
        "paymentId": payment_intent_id(event), "amount": amount, "currency": held["currency"]
    }
    assert len(done["orders"]) == 1 and done["orders"][0]["tickets"]
    assert done["documents"] and all(d["temporaryUrl"] for d in done["documents"])
    states = [entry["to"] for entry in done["timeline"]]
    assert states[0] == "received" and "paid" in states and states[-1] == "completed"
    assert again.json()["outcome"] == "duplicate"
    assert [o["externalReference"] for o in admin.orders()].count(held["id"]) == 1


def payment_intent_id(event: bytes) -> str:
    return str(json.loads(event)["data"]["object"]["id"])
