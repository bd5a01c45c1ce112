"""The Redis store: compare-and-set, timeline, and the deadline index kept as a safe hint."""

from __future__ import annotations

import redis

from tests.factories import booking_in
from worker.booking import keys
from worker.booking.record import Booking
from worker.booking.states import State
from worker.booking.store import BookingStore, Change


def held_booking(booking_id: str) -> Booking:
    return booking_in(State.AWAITING_PAYMENT, id=booking_id, expires_in=15 * 60)


def cancel(booking: Booking) -> Change | None:
    if booking.state != State.AWAITING_PAYMENT:
        return None
    booking.state = State.CANCELLED
    return Change(booking, "test cancel")


def test_a_stale_version_loses_and_the_winner_is_on_the_timeline(redis_client: redis.Redis) -> None:
    store = BookingStore(redis_client, retention_seconds=600)
    booking = held_booking("bk_cas")
    assert store.create(booking, reason="created")
    assert not store.create(booking, reason="again")  # one record per id

    stale = store.load(booking.id)
    first = store.update(booking.id, cancel, task_id="t1")
    # A writer holding the record read before `first`: its compare-and-set must lose,
    # and on the fresh record it finds nothing left to do.
    second = store.update(booking.id, cancel, task_id="t2", current=stale)

    assert first.changed and first.entered == [State.CANCELLED]
    assert not second.changed
    timeline = store.timeline(booking.id)
    assert [(e["from"], e["to"], e["task_id"]) for e in timeline] == [
        (None, "awaiting_payment", None),
        ("awaiting_payment", "cancelled", "t1"),
    ]
    assert 0 < redis_client.ttl(keys.booking(booking.id)) <= 600  # closed: retention TTL


def test_closing_removes_its_own_deadline_but_not_one_rescored_meanwhile(
    redis_client: redis.Redis,
) -> None:
    store = BookingStore(redis_client, retention_seconds=600)
    mine, theirs = held_booking("bk_mine"), held_booking("bk_theirs")
    store.create(mine, reason="created")
    store.create(theirs, reason="created")
    # Another writer re-scored `theirs` (e.g. a late payment reopening it) in between.
    redis_client.zadd(keys.DEADLINES, {theirs.id: 12345.0})

    store.update(mine.id, cancel)
    store.update(theirs.id, cancel)

    assert redis_client.zscore(keys.DEADLINES, mine.id) is None
    assert redis_client.zscore(keys.DEADLINES, theirs.id) == 12345.0


def test_writes_survive_redis_forgetting_its_scripts(redis_client: redis.Redis) -> None:
    store = BookingStore(redis_client, retention_seconds=600)
    booking = held_booking("bk_noscript")
    store.create(booking, reason="created")
    redis_client.script_flush()

    assert store.update(booking.id, cancel).changed
    assert store.load(booking.id).state == State.CANCELLED  # type: ignore[union-attr]
