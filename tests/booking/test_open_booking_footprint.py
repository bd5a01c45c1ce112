"""What an open booking holds in Redis, and the sweep_scale benchmark's fill of the same.

bench/sweep_cost.py writes open bookings in bulk (it cannot run a million through the
steps): this checks that what it writes is what the steps leave behind after the
reservation and the `booking.reserved` callback, key by key, so "Redis bytes per open
booking" measures the real thing.
"""

from __future__ import annotations

from typing import Any

import redis

from bench import sweep_cost
from tests.factories import RecordingEnqueuer
from tests.support.booking import request_for
from worker.booking.callbacks import deliver
from worker.booking.context import StepContext
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.record import Booking
from worker.booking.reserve import reserve
from worker.booking.service import BookingService
from worker.booking.store import BookingStore
from worker.korus.auth import SharedTokenProvider
from worker.korus.client import KorusClient
from worker.settings import Settings


def footprint(client: redis.Redis, booking_id: str) -> dict[str, Any]:
    """Each key of the booking (its own and its index entries) by kind: type, hash
    fields, list length."""
    found: dict[str, Any] = {}
    for key in sorted(str(k) for k in client.keys("*")):
        kind = str(client.type(key))
        if kind == "zset":
            if client.zscore(key, booking_id) is not None:
                found[key.replace(booking_id, "ID")] = "member"
            continue
        name = key.replace(booking_id, "ID")
        if name.startswith("bw:idem:"):
            name = "bw:idem:<merchant>:<key>"
        if kind == "hash":
            found[name] = sorted(str(f) for f in client.hkeys(key))
        elif kind == "list":
            found[name] = ("list", client.llen(key))
        elif kind == "string":
            found[name] = ("string", client.ttl(key) > 0)
    return found


def given(booking: Booking) -> set[str]:
    """The record's fields that differ from their defaults."""
    return {name for name, field in Booking.model_fields.items()
            if field.is_required()
            or getattr(booking, name) != field.get_default(call_default_factory=True)}


def test_the_bench_fill_holds_what_a_reserved_booking_holds(
    redis_client: redis.Redis, sandbox: Any, admin: Any, catalog: dict[str, Any]
) -> None:
    admin.reset()
    settings = Settings(redis_url="redis://unused", korus_base_url=sandbox.url,
                        korus_token="unused")
    tokens = SharedTokenProvider(redis_client, sandbox.token_url, "sandbox", "sandbox")
    korus = KorusClient(sandbox.url, tokens)
    store = BookingStore(redis_client, retention_seconds=3600, deadline_policy=DeadlinePolicy())
    enqueue = RecordingEnqueuer()
    ctx = StepContext(settings, redis_client, store, enqueue, lambda: korus)
    service = BookingService(store, enqueue, event_ttl_seconds=3600, policy="all_or_nothing")
    booking = service.start_booking(request_for(catalog, "Day Pass"),
                                    idempotency_key="order-1").booking
    reserve(ctx, booking.id, "6c2cffe0-0c45-4fc5-9a89-4083d9e88edc")
    assert deliver(ctx, booking.id, "booking.reserved", "t-notify") == "no callback url"
    redis_client.delete("bw:korus:token")  # the fleet's one token, not the booking's
    real = footprint(redis_client, booking.id)
    real_record = store.load(booking.id)
    assert real_record is not None
    real_timeline = store.timeline(booking.id)

    redis_client.flushdb()
    policy = DeadlinePolicy()
    sweep_cost.write(redis_client, 0, 1, 3600.0, policy, lambda: None)
    filled, _ = sweep_cost.open_booking(0, 3600.0, policy)
    # The fill's record sets every field the real one sets (the rest keep their defaults).
    assert given(real_record) <= given(filled)
    assert footprint(redis_client, filled.id) == real
    assert [(e["from"], e["to"], e["reason"]) for e in store.timeline(filled.id)] == [
        (e["from"], e["to"], e["reason"]) for e in real_timeline]
