"""Merchant callbacks (booking.notify): signed per the Standard Webhooks spec.

A callback never blocks or undoes a booking: it is sent after the state changed, from its
own queue, retried with backoff by the task, and its delivery is tracked apart from the
booking record (its own hash) so a slow merchant never conflicts with the booking's
compare-and-set. Delivery is at least once: a (booking, event type) recorded as
delivered is not sent again, but two copies of a message racing (a retry, a redelivery)
may both send it. The message id is stable, so the merchant dedupes on `webhook-id`. The
payload is built from the record at sending time, so a late event carries the latest
state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from worker.alerts import alert
from worker.booking import callback_transport, keys
from worker.booking.context import StepContext
from worker.booking.record import Booking
from worker.settings import whsec_key


class CallbackFailedError(Exception):
    """The merchant endpoint did not take the callback (retried with backoff)."""


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`; secret is `whsec_<base64>`."""
    key = whsec_key(secret)
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload(booking: Booking, event_type: str) -> dict[str, Any]:
    """What the merchant gets: ids, state, orders, vouchers, seating, documents. No PII."""
    data: dict[str, Any] = {
        "id": booking.id,
        "externalReference": booking.external_reference,
        "state": booking.state.value,
        "reason": booking.reason,
        "totalAmountInclTax": str(booking.total_incl_tax) if booking.total_incl_tax else None,
        "currency": booking.currency,
        "expiresAt": booking.earliest_expires_at.isoformat()
        if booking.earliest_expires_at
        else None,
    }
    if booking.payment is not None:
        data["payment"] = {
            "paymentId": booking.payment.payment_id,
            "amount": booking.payment.amount_minor,
            "currency": booking.payment.currency,
        }
    if booking.orders:
        data["orders"] = [
            {
                "id": o.id,
                "reference": o.reference,
                "tickets": [
                    {
                        "id": t.id,
                        "voucher": t.voucher,
                        "seating": t.seating,
                        "occursAt": t.occurs_at,
                    }
                    for t in o.tickets
                ],
            }
            for o in booking.orders
        ]
    if booking.documents:
        data["documents"] = [
            {
                "orderId": d.order_id,
                "documentId": d.document_id,
                "temporaryUrl": d.temporary_url,
                "urlExpiresAt": d.url_expires_at.isoformat() if d.url_expires_at else None,
            }
            for d in booking.documents
        ]
    return {"type": event_type, "timestamp": int(time.time()), "data": data}


def deliver(ctx: StepContext, booking_id: str, event_type: str) -> str:
    """Send one callback. Returns what happened; raises CallbackFailedError to retry."""
    status_key = keys.callbacks(booking_id)
    if ctx.redis.hget(status_key, event_type) == "delivered":
        return "already delivered"
    booking = ctx.store.load(booking_id)
    if booking is None:
        return "unknown booking"
    url = booking.callback_url or ctx.settings.callback_url
    secret = ctx.settings.callback_secret
    if not url:
        ctx.redis.hset(status_key, event_type, "no callback url")
        return "no callback url"
    body = json.dumps(payload(booking, event_type), separators=(",", ":"), default=str)
    msg_id = f"msg_{booking_id}_{event_type}"
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    if secret is not None:
        headers["webhook-signature"] = sign(secret.get_secret_value(), msg_id, timestamp, body)
    try:
        # SSRF-safe: https only, public addresses only, the checked address, no redirects.
        response = callback_transport.post(
            url,
            body.encode(),
            headers,
            policy=ctx.settings.callback_policy,
            timeout=ctx.settings.callback_timeout_seconds,
        )
    except callback_transport.TargetRefusedError as refused:
        # Final: retrying would hit the same refusal. Recorded and alerted, never sent.
        ctx.redis.hset(status_key, event_type, "refused")
        alert("callback_refused", booking_id, f"{event_type} not sent: {refused}")
        return "refused"
    except callback_transport.CallbackTransportError as error:
        raise CallbackFailedError(f"{event_type} to merchant failed: {error}") from error
    if not 200 <= response.status < 300:
        raise CallbackFailedError(f"{event_type}: merchant answered {response.status}")
    ctx.redis.hset(status_key, event_type, "delivered")
    return "delivered"
