"""Merchant callbacks: signed per Standard Webhooks, retried, never blocking the booking."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.support.booking import pay, request_for, wait_for
from tests.support.deployment import WORKER_SETTINGS
from tests.support.receiver import HttpRecorder, recorder
from worker.booking.service import BookingService
from worker.booking.states import State

SECRET = "whsec_" + base64.b64encode(b"merchant-callback-secret-for-tests").decode()


@pytest.fixture(scope="module")
def worker_settings() -> dict[str, str]:
    # Retries within a broker countdown (no beat runs here to send them from Redis).
    return {**WORKER_SETTINGS, "CALLBACK_SECRET": SECRET, "CALLBACK_BACKOFF_BASE_SECONDS": "1"}


@pytest.fixture
def merchant() -> Iterator[HttpRecorder]:
    with recorder() as running:
        yield running


def test_callbacks_are_signed_and_a_failing_endpoint_is_retried_without_blocking(
    service: BookingService, catalog: dict[str, Any], merchant: HttpRecorder
) -> None:
    merchant.status_for = lambda n: 500 if n == 0 else 200  # first delivery fails
    request = request_for(catalog, "Day Pass", callbackUrl=merchant.url + "/hooks")
    booking = service.start_booking(request).booking
    pay(service, wait_for(service, booking.id, State.AWAITING_PAYMENT))
    wait_for(service, booking.id, State.COMPLETED, timeout=40)

    received = merchant.wait_for(3, timeout=30)
    delivered = [r for n, r in enumerate(received) if merchant.status_for(n) == 200]
    events = {json.loads(r.body)["type"] for r in delivered}
    assert events == {"booking.reserved", "booking.completed"}
    assert len(received) == 3  # one failure, then each event once
    for request_ in received:
        payload = Webhook(SECRET).verify(request_.body, request_.headers)
        assert payload["data"]["id"] == booking.id
        assert "customer" not in payload["data"]
        assert b"grace@example.com" not in request_.body
    completed = next(json.loads(r.body) for r in delivered if b"booking.completed" in r.body)
    assert completed["data"]["orders"][0]["tickets"][0]["voucher"]
    assert completed["data"]["documents"][0]["temporaryUrl"]


def test_tampered_callback_fails_verification(
    service: BookingService, catalog: dict[str, Any], merchant: HttpRecorder
) -> None:
    booking = service.start_booking(
        request_for(catalog, "Broken Subsystem Ride", callbackUrl=merchant.url)
    ).booking
    wait_for(service, booking.id, State.RESERVATION_FAILED)
    (request_,) = merchant.wait_for(1)
    assert json.loads(request_.body)["type"] == "booking.reservation_failed"
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(SECRET).verify(request_.body + b" ", request_.headers)
