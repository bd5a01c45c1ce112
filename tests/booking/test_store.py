"""The Redis store: compare-and-set, timeline, and the deadline index kept as a safe hint."""

from __future__ import annotations

import base64
import json
import time
import zlib

import pytest
import redis

from tests.factories import booking_in
from worker.booking import keys
from worker.booking.codec import decode_record
from worker.booking.record import Booking
from worker.booking.states import State
from worker.booking.store import BookingStore, Change, ConcurrentUpdateError, PaymentWaitingError


def held_booking(booking_id: str) -> Booking:
    return booking_in(State.AWAITING_PAYMENT, id=booking_id, expires_in=15 * 60)


def store_on(client: redis.Redis) -> BookingStore:
    """A store of its own (remembering nothing yet), with the retention the TTLs are
    checked against."""
    return BookingStore(client, retention_seconds=600)


def created(store: BookingStore, booking_id: str) -> Booking:
    """A held booking, written through `store`."""
    booking = held_booking(booking_id)
    assert store.create(booking, reason="created")
    return booking


def cancel(booking: Booking) -> Change | None:
    if booking.state != State.AWAITING_PAYMENT:
        return None
    booking.state = State.CANCELLED
    return Change(booking, "test cancel")


def test_a_stale_version_loses_and_the_winner_is_on_the_timeline(redis_client: redis.Redis) -> None:
    store = store_on(redis_client)
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
    store = store_on(redis_client)
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
    store = store_on(redis_client)
    booking = created(store, "bk_noscript")
    redis_client.script_flush()

    assert store.update(booking.id, cancel).changed
    assert store.load(booking.id).state == State.CANCELLED  # type: ignore[union-attr]


class CountingRedis(redis.Redis):
    """The real client, counting the commands it sends one by one (not in pipelines)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sent: list[str] = []

    def execute_command(self, *args: object, **options: object) -> object:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


def counting_client(redis_client: redis.Redis) -> CountingRedis:
    return CountingRedis(connection_pool=redis_client.connection_pool)


def note(reason: str):  # type: ignore[no-untyped-def]
    def transition(booking: Booking) -> Change:
        booking.reason = reason
        return Change(booking, reason, note=True)

    return transition


def test_an_update_after_this_store_wrote_the_record_does_not_read_it_again(
    redis_client: redis.Redis,
) -> None:
    client = counting_client(redis_client)
    store = store_on(client)
    booking = created(store, "bk_ryw")
    client.sent.clear()
    first = store.update(booking.id, note("one"))
    second = store.update(booking.id, note("two"))
    assert first.changed and second.changed
    assert client.sent.count("HGET") == 0  # both wrote from the record this store knew
    assert store_on(redis_client).load(booking.id).reason == "two"  # type: ignore[union-attr]


def test_a_remembered_record_made_stale_by_another_writer_is_never_trusted(
    redis_client: redis.Redis,
) -> None:
    mine, other = store_on(redis_client), store_on(redis_client)
    booking = created(mine, "bk_stale_guess")
    other.update(booking.id, cancel)  # `mine` still remembers it awaiting payment

    # On the remembered record this would cancel: the compare-and-set must refuse it and
    # the fresh record (cancelled) finds nothing to do.
    assert not mine.update(booking.id, cancel).changed

    noted = other.update(booking.id, note("still cancelled"))
    assert noted.changed
    # Nothing to do on the remembered record either: the answer must still be the
    # stored record (with the other writer's note), not the remembered one.
    result = mine.update(booking.id, lambda b: None)
    assert result.booking == other.load(booking.id)
    assert result.booking is not None and result.booking.reason == "still cancelled"


def test_nothing_to_do_on_a_stale_remembered_record_is_checked_against_redis(
    redis_client: redis.Redis,
) -> None:
    mine, other = store_on(redis_client), store_on(redis_client)
    booking = held_booking("bk_stale_noop")
    booking.state = State.RESERVING
    booking.reservations = []
    mine.create(booking, reason="created")
    # Another worker lands the reservation: the booking now awaits payment.
    other.update(booking.id, lambda b: Change(
        b.model_copy(update={"state": State.AWAITING_PAYMENT}), "held"))

    # `mine` remembers it reserving, where `cancel` has nothing to do; the stored record
    # awaits payment, where it must cancel.
    result = mine.update(booking.id, cancel)
    assert result.changed and result.booking is not None
    assert result.booking.state == State.CANCELLED


def test_records_are_stored_compressed_and_older_forms_are_still_read(
    redis_client: redis.Redis,
) -> None:
    store = store_on(redis_client)
    booking = created(store, "bk_compact")
    stored = str(redis_client.hget(keys.booking(booking.id), "json"))
    assert stored.startswith("z1:") and len(stored) < len(booking.to_json()) / 3

    # Records written by older writers, as plain JSON and as zlib without a dictionary,
    # are read and updated alike.
    for n, form in enumerate((lambda raw: raw, lambda raw: "z:" + base64.b64encode(
            zlib.compress(raw.encode(), 1)).decode())):
        older = held_booking(f"bk_older{n}")
        redis_client.hset(keys.booking(older.id), mapping={
            "version": 0, "state": older.state.value, "json": form(older.to_json())})
        assert store.load(older.id) == older
        fresh = BookingStore(redis_client, retention_seconds=600)  # remembers nothing
        assert fresh.update(older.id, cancel).changed
        assert fresh.load(older.id).state == State.CANCELLED  # type: ignore[union-attr]


def test_the_compression_dictionary_never_changes() -> None:
    # Written by this dictionary; if this fails, stored records can no longer be read:
    # keep RECORD_DICTIONARY as it is and give a new one a new prefix (worker/booking/codec.py).
    golden = "z1:LzFw|`8g@6d6?xh(OEnhmOS!NGdVDK0ss"
    assert decode_record(golden) == (
        '{"id":"bk_golden","state":"paid","items":'
        '[{"offer":"/v1/ticketing/catalogs/c/offers/o","quantity":1}]}'
    )


def test_a_write_moves_the_state_indexes_and_a_lost_one_touches_none(
    redis_client: redis.Redis,
) -> None:
    store = store_on(redis_client)
    booking = created(store, "bk_indexes")
    awaiting, cancelled = keys.by_state("awaiting_payment"), keys.by_state("cancelled")
    assert redis_client.zscore(awaiting, booking.id) is not None
    assert redis_client.zscore(keys.DEADLINES, booking.id) is not None
    redis_client.hset(keys.callbacks(booking.id), "booking.reserved", "delivered")

    stale = store.load(booking.id)
    assert store.update(booking.id, cancel).changed
    assert redis_client.zscore(awaiting, booking.id) is None  # moved out of the old state
    assert redis_client.zscore(cancelled, booking.id) is not None
    assert redis_client.zscore(keys.DEADLINES, booking.id) is None  # closed: no deadline
    assert 0 < redis_client.ttl(keys.callbacks(booking.id)) <= 600  # expires with it

    # A writer that lost the compare-and-set leaves every index as it was.
    def expire(b: Booking) -> Change | None:
        if b.state != State.AWAITING_PAYMENT:
            return None
        b.state = State.EXPIRED
        return Change(b, "late")

    with pytest.raises(ConcurrentUpdateError):
        store.update(booking.id, expire, current=stale, attempts=1)
    assert redis_client.zscore(keys.by_state("expired"), booking.id) is None
    assert redis_client.zscore(cancelled, booking.id) is not None


def test_the_compare_and_set_exists_once_in_both_write_scripts() -> None:
    from worker.booking import store as module

    fragment = module._CAS_FRAGMENT.split("{first_entry}")
    for script in (module._CAS_SCRIPT, module._WRITE_ALL_SCRIPT):
        assert script.startswith(fragment[0]) and fragment[1] in script
        assert script.count("redis.call('HGET', KEYS[1], 'version')") == 1


def test_a_state_entered_records_its_merchant_callback_as_expected_with_the_write(
    redis_client: redis.Redis,
) -> None:
    client = counting_client(redis_client)
    store = BookingStore(client, retention_seconds=600)
    booking = held_booking("bk_expects")
    store.create(booking, reason="created")
    assert redis_client.zcard(keys.CALLBACKS_DUE) == 0  # received: no callback
    client.sent.clear()

    assert store.update(booking.id, cancel).changed
    # In the write's own script (no command of its own): the sweeper sends it if the
    # notify message is lost.
    assert client.sent == []
    due = redis_client.zscore(keys.CALLBACKS_DUE, f"{booking.id}|booking.cancelled")
    assert due is not None and due > time.time()
    # A note (no state entered) records nothing more.
    assert store.update(booking.id, note("noted")).changed
    assert redis_client.zcard(keys.CALLBACKS_DUE) == 1


def test_a_write_applying_a_payment_event_drops_it_and_a_cancel_refuses_while_one_waits(
    redis_client: redis.Redis,
) -> None:
    store = BookingStore(redis_client, retention_seconds=600)
    booking = held_booking("bk_guard")
    store.create(booking, reason="created")
    store.payment_received(booking.id, "evt_1", due=time.time() + 60, ttl_seconds=600)

    with pytest.raises(PaymentWaitingError):
        store.update(booking.id, cancel, unless_payment_waiting=True)
    assert store.load(booking.id).state == State.AWAITING_PAYMENT  # type: ignore[union-attr]
    assert len(store.timeline(booking.id)) == 1  # nothing written

    assert store.update(booking.id, note("paid"), applies_event="evt_1").changed
    assert store.pending_payment_events([booking.id]) == {}
    assert store.update(booking.id, cancel, unless_payment_waiting=True).changed


def test_a_callback_swap_moves_its_due_entry_with_the_swap(redis_client: redis.Redis) -> None:
    client = counting_client(redis_client)
    store = BookingStore(client, retention_seconds=600)
    member = "bk_cb|booking.reserved"
    assert store.callback_swap("bk_cb", "booking.reserved", None, "sending", due=123.0)
    assert redis_client.zscore(keys.CALLBACKS_DUE, member) == 123.0
    client.sent.clear()
    assert not store.callback_swap("bk_cb", "booking.reserved", None, "again", due=None)
    assert redis_client.zscore(keys.CALLBACKS_DUE, member) == 123.0  # a lost swap: untouched
    assert store.callback_swap("bk_cb", "booking.reserved", "sending", "delivered", due=None)
    assert redis_client.zscore(keys.CALLBACKS_DUE, member) is None
    assert client.sent == []  # each swap one pipelined script (no separate ZADD/ZREM)


def test_timeline_entries_are_compact_and_older_ones_read_the_same(
    redis_client: redis.Redis,
) -> None:
    store = BookingStore(redis_client, retention_seconds=600)
    booking = held_booking("bk_timeline")
    older = {"at": "2026-01-02T03:04:05.000006+00:00", "from": None, "to": "received",
             "reason": "booking received", "task_id": None}
    redis_client.rpush(keys.timeline(booking.id), json.dumps(older))  # an older writer's
    store.create(booking, reason="created")
    assert store.update(booking.id, cancel, task_id="t1").changed

    stored = redis_client.lrange(keys.timeline(booking.id), 0, -1)
    assert all(str(entry).startswith("[") for entry in stored[1:])
    timeline = store.timeline(booking.id)
    assert timeline[0] == older
    assert timeline[2]["from"] == "awaiting_payment" and timeline[2]["to"] == "cancelled"
    assert timeline[2]["task_id"] == "t1" and timeline[2]["reason"] == "test cancel"
    written = store.load(booking.id)
    assert written is not None and timeline[2]["at"] == written.updated_at.isoformat()
