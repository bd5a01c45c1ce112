"""The service entry point on real Redis: listing cursors and Idempotency-Key claims."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.factories import RecordingEnqueuer, booking_in
from tests.support.booking import CUSTOMER
from worker.booking import keys
from worker.booking.record import utcnow
from worker.booking.requests import BookingRequest
from worker.booking.service import (
    BookingConflictError,
    BookingService,
    IdempotencyKeyInProgressError,
)
from worker.booking.states import State
from worker.booking.store import BookingStore

OFFER = "/v1/ticketing/catalogs/c/offers/o"
REQUEST = BookingRequest.model_validate(
    {
        "externalReference": "SHOP-1",
        "items": [
            {"offer": OFFER, "quantity": 1, "ticketSessions": [{"ticket": OFFER + "/tickets/t"}]}
        ],
        "customer": CUSTOMER,
    }
)


def make_service(client: redis.Redis) -> tuple[BookingService, RecordingEnqueuer]:
    enqueued = RecordingEnqueuer()
    store = BookingStore(client, retention_seconds=3600)
    return BookingService(store, enqueued, event_ttl_seconds=60, policy="all_or_nothing"), enqueued


def test_listing_pages_through_bookings_created_in_the_same_microsecond(
    redis_client: redis.Redis,
) -> None:
    service, _ = make_service(redis_client)
    same_moment = utcnow()
    ids = []
    for n in range(7):
        booking = booking_in(State.RECEIVED, id=f"bk_{n:02d}", created_at=same_moment)
        assert service.store.create(booking, reason="test")
        ids.append(booking.id)

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page, cursor = service.list(State.RECEIVED, cursor=cursor, limit=3)
        seen += [b.id for b in page]
        if cursor is None:
            break
    assert seen == ids


def test_same_idempotency_key_and_body_returns_the_same_booking(redis_client: redis.Redis) -> None:
    service, enqueued = make_service(redis_client)
    first = service.start_booking(REQUEST, idempotency_key="key-1")
    again = service.start_booking(REQUEST, idempotency_key="key-1")

    assert first.created and not again.created
    assert again.booking.id == first.booking.id
    assert enqueued.names == ["reserve"]


def test_abandoned_idempotency_claim_is_taken_over(redis_client: redis.Redis) -> None:
    service, _ = make_service(redis_client)
    body = json.dumps(REQUEST.model_dump(mode="json", by_alias=True), sort_keys=True)
    import hashlib

    stale = {
        "booking_id": "bk_never_written",
        "digest": hashlib.sha256(body.encode()).hexdigest(),
        "at": time.time() - 120,
    }
    redis_client.set(keys.idempotency("default", "key-2"), json.dumps(stale))

    result = service.start_booking(REQUEST, idempotency_key="key-2")

    assert result.created and result.booking.id != "bk_never_written"
    assert service.start_booking(REQUEST, idempotency_key="key-2").booking.id == result.booking.id


def test_a_key_whose_first_request_has_not_finished_is_in_progress_not_a_state_conflict(
    redis_client: redis.Redis,
) -> None:
    service, enqueued = make_service(redis_client)
    body = json.dumps(REQUEST.model_dump(mode="json", by_alias=True), sort_keys=True)
    import hashlib

    running = {
        "booking_id": "bk_being_written",
        "digest": hashlib.sha256(body.encode()).hexdigest(),
        "at": time.time(),
    }
    redis_client.set(keys.idempotency("default", "key-3"), json.dumps(running))

    with pytest.raises(IdempotencyKeyInProgressError, match="still being processed"):
        service.start_booking(REQUEST, idempotency_key="key-3")
    assert not issubclass(IdempotencyKeyInProgressError, BookingConflictError)
    assert enqueued.calls == []
