"""The demo's shop and payment provider, over HTTP against the web front.

The shop creates bookings through the merchant API (`Authorization: Bearer <key>`, an
`Idempotency-Key` per booking, so a retried POST never makes a second booking). The
payment provider sends `payment_intent.succeeded` to `/webhooks/stripe`, signed by the
official `stripe` library, with one event id per booking (a retried delivery is a
duplicate, never a second payment). Both retry what a real client retries: connection
errors, 409 "in progress", 429 and 5xx, a bounded number of times.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

# /metrics as sample name → sorted labels → value.
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]

ATTEMPTS = 8
TIMEOUT = (3.05, 15.0)
_RETRIED = frozenset({409, 429, 500, 502, 503, 504})


class TrafficError(RuntimeError):
    """The front refused a request for good; the message has the status and detail."""


class StoppedError(TrafficError):
    """The demo is stopping: no more retries."""


@dataclass(frozen=True)
class Payment:
    booking_id: str
    outcome: str  # the webhook's answer: enqueued, duplicate, ...
    accepted_at: float  # wall clock (s) when the 200 came back


def _pause(stop: threading.Event, seconds: float) -> None:
    if stop.wait(seconds):
        raise StoppedError("the demo is stopping")


def _send(
    session: requests.Session, stop: threading.Event, method: str, url: str, **kwargs: Any
) -> requests.Response:
    """One request with bounded retries of transient answers (backoff 0.2 s → 3 s)."""
    delay = 0.2
    for attempt in range(ATTEMPTS):
        if stop.is_set():
            raise StoppedError("the demo is stopping")
        try:
            response = session.request(method, url, timeout=TIMEOUT, **kwargs)
        except (requests.ConnectionError, requests.Timeout):
            if attempt == ATTEMPTS - 1:
                raise
        else:
            if response.status_code not in _RETRIED or attempt == ATTEMPTS - 1:
                return response
        _pause(stop, delay)
        delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail") or body.get("title") or body)[:300]


class Shop:
    """The merchant API client of the demo."""

    def __init__(
        self, web_url: str, merchant_key: str, metrics_token: str, stop: threading.Event
    ) -> None:
        self.web_url = web_url
        self.stop = stop
        self.metrics_token = metrics_token
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {merchant_key}"

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/bookings; the booking view (202 enqueued, 200 replayed)."""
        response = _send(
            self.session,
            self.stop,
            "POST",
            f"{self.web_url}/v1/bookings",
            json=body,
            headers={"Idempotency-Key": body["externalReference"]},
        )
        if response.status_code not in (200, 201, 202):
            raise TrafficError(f"POST /v1/bookings: {response.status_code} {_detail(response)}")
        return dict(response.json())

    def get(self, booking_id: str) -> dict[str, Any]:
        """GET /v1/bookings/{id}: the booking with its timeline."""
        url = f"{self.web_url}/v1/bookings/{booking_id}"
        response = _send(self.session, self.stop, "GET", url)
        if response.status_code != 200:
            raise TrafficError(f"GET {booking_id}: {response.status_code} {_detail(response)}")
        return dict(response.json())

    def listed(self, state: str) -> Iterator[dict[str, Any]]:
        """Every booking in `state`, page by page."""
        cursor: str | None = None
        while True:
            params = {"state": state, "limit": "200", **({"cursor": cursor} if cursor else {})}
            url = f"{self.web_url}/v1/bookings"
            response = _send(self.session, self.stop, "GET", url, params=params)
            if response.status_code != 200:
                raise TrafficError(f"GET /v1/bookings: {response.status_code} {_detail(response)}")
            page = response.json()
            yield from page["items"]
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def metrics(self) -> Samples:
        """GET /metrics, as sample name → labels → value."""
        # /metrics is private: the front answers it only with the operators' token.
        response = _send(
            self.session,
            self.stop,
            "GET",
            f"{self.web_url}/metrics",
            headers={"Authorization": f"Bearer {self.metrics_token}"},
        )
        response.raise_for_status()
        samples: Samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                samples.setdefault(sample.name, {})[labels] = sample.value
        return samples

    def close(self) -> None:
        self.session.close()


def minor_units(amount: str) -> int:
    """"42.50" → 4250 (the amounts of the demo's catalog have two decimals at most)."""
    return int(Decimal(amount) * 100)


class PaymentProvider:
    """Stripe as seen by the web front: signed `payment_intent.succeeded` deliveries."""

    def __init__(self, web_url: str, endpoint_secret: str, stop: threading.Event) -> None:
        import stripe  # the demo extra (pyproject): the official library signs

        self._sign = stripe.WebhookSignature.generate_signature_header
        self.url = f"{web_url}/webhooks/stripe"
        self.secret = endpoint_secret
        self.stop = stop
        self.session = requests.Session()

    def pay(self, booking: dict[str, Any]) -> Payment:
        """Deliver the succeeded event for `booking` (its total and currency)."""
        booking_id = str(booking["id"])
        amount = minor_units(str(booking["totalAmountInclTax"]))
        event = {
            "id": f"evt_demo_{booking_id}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "livemode": False,
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": f"pi_demo_{booking_id}",
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_received": amount,
                    "currency": str(booking["currency"]).lower(),
                    "metadata": {"booking_id": booking_id},
                    "status": "succeeded",
                }
            },
        }
        payload = json.dumps(event)
        # Signed once per delivery: a retry carries a fresh timestamp, as Stripe's do.
        delay = 0.2
        for attempt in range(ATTEMPTS):
            if self.stop.is_set():
                raise StoppedError("the demo is stopping")
            headers = {
                "Stripe-Signature": str(self._sign(payload, self.secret)),
                "Content-Type": "application/json; charset=utf-8",
            }
            try:
                response = self.session.post(
                    self.url, data=payload.encode(), headers=headers, timeout=TIMEOUT
                )
            except (requests.ConnectionError, requests.Timeout):
                if attempt == ATTEMPTS - 1:
                    raise
            else:
                if response.status_code == 200:
                    outcome = str(response.json().get("outcome"))
                    return Payment(booking_id, outcome, time.time())
                if response.status_code not in _RETRIED or attempt == ATTEMPTS - 1:
                    raise TrafficError(
                        f"webhook for {booking_id}: {response.status_code} {_detail(response)}"
                    )
            _pause(self.stop, delay)
            delay = min(delay * 2, 3.0)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.session.close()
