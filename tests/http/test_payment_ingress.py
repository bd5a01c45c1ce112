"""The one-round-trip webhook path (worker.http.payment_ingress): its task message is the
one `send_task` would have put on the broker, and its outcomes are record_payment's."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from tests.http.helpers import held_booking
from worker.app import app
from worker.booking import keys
from worker.booking.requests import PaymentEvent
from worker.booking.service import BookingService, new_booking_id
from worker.booking.store import BookingStore
from worker.enqueue import CeleryEnqueuer
from worker.http.payment_ingress import PaymentIngress


def _service(client: redis.Redis) -> BookingService:
    return BookingService(BookingStore(client, retention_seconds=3600), CeleryEnqueuer(app),
                          event_ttl_seconds=3600, policy="all_or_nothing")


def _event(booking_id: str, event_id: str) -> PaymentEvent:
    return PaymentEvent(provider="payments", event_id=event_id, kind="succeeded",
                        booking_id=booking_id, payment_id="pay_1", amount_minor=4250,
                        currency="eur")


def _queued(client: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for key in client.scan_iter(count=1000):
        if not key.startswith("bw:") and client.type(key) == "list":
            found += [(key, json.loads(raw)) for raw in client.lrange(key, 0, -1)]
    return found


def test_the_fast_message_is_the_one_send_task_puts_on_the_broker(
    redis_client: redis.Redis,
) -> None:
    ingress = PaymentIngress(_service(redis_client), app)
    assert ingress.enabled  # the test broker is the test Redis database

    CeleryEnqueuer(app).payment_succeeded("bk_" + "a" * 24, "payments:evt_1")
    [(queue, sent)] = _queued(redis_client)
    ingress.message("bk_" + "b" * 24, "payments:evt_0")  # the first one builds the template
    fast = json.loads(ingress.message("bk_" + "a" * 24, "payments:evt_1"))

    assert queue == ingress.queue_key
    assert set(fast) == set(sent)
    for name in ("content-type", "content-encoding"):
        assert fast[name] == sent[name]
    varying = {"id", "root_id", "origin"}
    assert set(fast["headers"]) == set(sent["headers"])
    assert {k: v for k, v in fast["headers"].items() if k not in varying} == {
        k: v for k, v in sent["headers"].items() if k not in varying}
    assert fast["headers"]["root_id"] == fast["headers"]["id"]
    assert set(fast["properties"]) == set(sent["properties"])
    assert {k: v for k, v in fast["properties"].items()
            if k not in ("correlation_id", "delivery_tag")} == {
        k: v for k, v in sent["properties"].items()
        if k not in ("correlation_id", "delivery_tag")}
    assert fast["properties"]["correlation_id"] == fast["headers"]["id"]
    assert base64.b64decode(fast["body"]) == base64.b64decode(sent["body"])  # byte for byte


def test_record_enqueues_once_and_answers_like_record_payment(
    redis_client: redis.Redis,
) -> None:
    service = _service(redis_client)
    ingress = PaymentIngress(service, app)
    booking = held_booking(redis_client)

    assert ingress.record(_event(booking.id, "evt_fast_1")) == "enqueued"
    assert ingress.record(_event(booking.id, "evt_fast_1")) == "duplicate"
    unknown = new_booking_id()
    assert ingress.record(_event(unknown, "evt_fast_2")) == "unknown_booking"

    queued = _queued(redis_client)
    assert len(queued) == 1
    args = json.loads(base64.b64decode(queued[0][1]["body"]))[0]
    assert args == [booking.id, "payments:evt_fast_1"]
    claim = json.loads(redis_client.get(keys.payment_event("payments:evt_fast_1")) or "{}")
    assert claim["enqueued"] is True and claim["booking_id"] == booking.id
    assert redis_client.ttl(keys.payment_event("payments:evt_fast_1")) > 0
    assert json.loads(redis_client.get(keys.payment_event("payments:evt_fast_2")) or "{}")
