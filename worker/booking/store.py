"""Booking state in Redis: every write is a compare-and-set that appends to the timeline.

Layout (see keys.py): one hash per booking (`state`, `version`, `json`: the record,
compressed by worker/booking/codec.py), a capped timeline list (compact JSON arrays,
`timeline_entry`), both under the booking's hash tag, so the Lua script touches keys of
one slot only and also runs on Redis Cluster. The global indexes (deadlines, bookings by
state) cannot join that script on a cluster. The deadline index is written *ahead* of
the record and cleaned *after* it, so it may hold a stale entry (the sweeper re-checks
the record) but never misses a booking. The listing index (bookings by state) is written
*after* the compare-and-set, so a writer that lost the race leaves nothing behind; a
crash between the two is repaired by the sweeper (`reindex`), and listings re-check the
record's state.

This module is the only one that issues Redis commands for bookings: records, timelines,
received payment events, merchant-callback delivery records, claims' liveness keys and
the global indexes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis

from worker.booking import keys
from worker.booking.codec import compress_json, decode_record
from worker.booking.deadlines import DeadlinePolicy, next_deadline
from worker.booking.effects import CALLBACK_ON_ENTRY
from worker.booking.record import Booking, PaymentEventRecord, TimelineEntry, utcnow
from worker.booking.states import CLOSED, DRIVER, State, can_move

TIMELINE_CAP = 200
# Records remembered per store for read-your-writes (see BookingStore.__init__).
RECENT_RECORDS = 1024

# The compare-and-set, shared by both write scripts below (string composition: this logic
# exists once). KEYS[1] booking hash, KEYS[2] timeline list, KEYS[3] the booking's
# received payment events (all under the booking's hash tag: one slot).
# ARGV: 1 expected version (-1: must not exist), 2 new version, 3 new state, 4 stored
#       record, 5 ttl seconds (0: keep forever), 6 timeline cap, 7 '1': refuse the write
#       while a successful payment event waits in KEYS[3] (a cancel), 8 a payment event
#       this write applies ('' none: dropped from KEYS[3] with the write), then the
#       script's own arguments, then the timeline entries from the `first_entry` argument on.
# Returns 0 (the version differs: the caller lost the race) or -1 (refused: a success
# waits) without writing anything; falls through to the script's own part once written.
_CAS_FRAGMENT = """
local current = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '-1' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
if ARGV[7] == '1' and redis.call('SCARD', KEYS[3]) > 0 then return -1 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3], 'json', ARGV[4])
for i = {first_entry}, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
if ARGV[8] ~= '' then redis.call('SREM', KEYS[3], ARGV[8]) end
"""
_CAS_ARGS = 8

# The write alone (a Redis Cluster: the global indexes live in other slots and are
# written around it, see `_write`). Timeline entries from ARGV[9].
_CAS_SCRIPT = _CAS_FRAGMENT.replace("{first_entry}", str(_CAS_ARGS + 1)) + "return 1\n"

# The same write with its index updates in ONE round trip, for a single Redis server:
# the compare-and-set, then, only if it passed, the deadline and state indexes, the
# cleaning that `_clean_after` does in a second round trip otherwise, and the merchant
# callback the new state sends, recorded as expected (the sweeper sends it if its message
# is lost). Atomic, so the indexes need no "ahead/after" ordering here.
# KEYS: 1-3 as the fragment, 4 deadline index, 5 new-state index, 6 old-state index,
#       7 callbacks hash, 8 callbacks-due index.
# ARGV: 1-8 as the fragment, 9 deadline score ('' none), 10 state-index score,
#       11 booking id, 12 '1' if the state moved, 13 deadline score to drop if still
#       there ('' none), 14 callbacks ttl ('' none), 15 callback event type the new state
#       sends ('' none), 16 its due score, 17... timeline entries.
_WRITE_ALL_ARGS = _CAS_ARGS + 8
_WRITE_ALL_SCRIPT = _CAS_FRAGMENT.replace("{first_entry}", str(_WRITE_ALL_ARGS + 1)) + """
if ARGV[9] ~= '' then redis.call('ZADD', KEYS[4], ARGV[9], ARGV[11]) end
redis.call('ZADD', KEYS[5], ARGV[10], ARGV[11])
if ARGV[12] == '1' then redis.call('ZREM', KEYS[6], ARGV[11]) end
if ARGV[13] ~= '' then
  local score = redis.call('ZSCORE', KEYS[4], ARGV[11])
  if score and tonumber(score) == tonumber(ARGV[13]) then redis.call('ZREM', KEYS[4], ARGV[11]) end
end
if ARGV[14] ~= '' then redis.call('EXPIRE', KEYS[7], tonumber(ARGV[14])) end
if ARGV[15] ~= '' then redis.call('ZADD', KEYS[8], 'NX', ARGV[16], ARGV[11] .. '|' .. ARGV[15]) end
return 1
"""


# Remove a deadline-index entry only if it still has the score the caller wrote.
_DROP_HINT_SCRIPT = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""


def encode_record(booking: Booking) -> str:
    """The stored form of a record (what the `json` field of its hash holds)."""
    return compress_json(booking.to_json())


class ConcurrentUpdateError(RuntimeError):
    """The record kept changing under us; the caller's task retries later."""


class PaymentWaitingError(RuntimeError):
    """A write that must not happen while a successful payment event waits on the
    booking (`BookingStore.update(unless_payment_waiting=True)`) was refused."""


# What the write scripts answer.
_WRITTEN, _LOST, _REFUSED = 1, 0, -1


class IllegalTransitionError(RuntimeError):
    pass


@dataclass
class Change:
    """What a transition function returns: the new record and why it changed."""

    booking: Booking
    reason: str
    note: bool = False  # a timeline entry without a state change


@dataclass
class UpdateResult:
    booking: Booking | None
    changed: bool = False
    previous_state: State | None = None
    entered: list[State] = field(default_factory=list)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timeline_entry(
    source: State | None, target: State, reason: str, task_id: str | None, at: datetime
) -> str:
    """A timeline entry as stored: a JSON array `[at, from, to, reason, task_id]`, `at` in
    microseconds since the epoch (a third of the bytes of the object form with ISO time
    that older writers stored; `read_timeline_entry` reads both)."""
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return json.dumps(
        [micros, source.value if source else None, target.value, reason, task_id],
        separators=(",", ":"),
    )


def read_timeline_entry(stored: str) -> TimelineEntry:
    """An entry as the API shows it: at (ISO 8601), from, to, reason, task_id."""
    entry = json.loads(stored)
    if isinstance(entry, dict):  # written by an older writer: the same keys
        older: TimelineEntry = {
            "at": entry["at"], "from": entry.get("from"), "to": entry["to"],
            "reason": entry.get("reason"), "task_id": entry.get("task_id"),
        }
        return older
    micros, source, target, reason, task_id = entry
    at = _EPOCH + timedelta(microseconds=micros)
    read: TimelineEntry = {
        "at": at.isoformat(), "from": source, "to": target, "reason": reason, "task_id": task_id,
    }
    return read


def _evalsha(pipe: Any, sha: str, numkeys: int, *keys_and_args: Any) -> None:
    """Queue EVALSHA on a pipeline of either client. redis-py's cluster pipeline refuses
    `pipe.evalsha()` but routes the raw command by its first key's slot like any other
    (every script here touches keys of one slot)."""
    pipe.execute_command("EVALSHA", sha, numkeys, *keys_and_args)


def _score(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


class BookingStore:
    """Loads and writes booking records: the only code that writes a record or its
    timeline. Others touch the indexes around it: the sweep claims, re-scores and prunes
    deadline and by-state entries, the service and the webhook ingress
    (worker/http/payment_ingress.py) check that a paid booking exists, the
    metrics count the by-state indexes, and callbacks keep their delivery status apart."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        retention_seconds: int,
        deadline_policy: DeadlinePolicy | None = None,
    ) -> None:
        self.redis = client
        self.retention_seconds = retention_seconds
        self.deadline_policy = deadline_policy or DeadlinePolicy()
        self._scripts: dict[str, str] = {}  # source -> sha1, loaded once per store
        # One round trip per write on a single server; two on a cluster (see scripts).
        self._one_round_trip = not isinstance(client, redis.cluster.RedisCluster)
        # Read-your-writes: the JSON of the records this store last read or wrote, by id.
        # `update` takes it as its first guess instead of reading the record again (a
        # step usually updates a booking it has just loaded or written); a guess is never
        # trusted: a stale one fails the compare-and-set, and a guess the transition
        # finds nothing to do with is read again from Redis before that is believed.
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._recent_lock = threading.Lock()

    # -- reads ---------------------------------------------------------------
    def load(self, booking_id: str) -> Booking | None:
        raw = self._load_raw(booking_id)
        return Booking.from_json(raw) if raw else None

    def _load_raw(self, booking_id: str) -> str | None:
        return self._decoded(booking_id, self.redis.hget(keys.booking(booking_id), "json"))

    def _decoded(self, booking_id: str, stored: object) -> str | None:
        """A stored record field as JSON, remembered for the next compare-and-set, or
        None (and forgotten) when the record is gone."""
        if not stored:
            self._forget(booking_id)
            return None
        raw = decode_record(str(stored))
        self._remember(booking_id, raw)
        return raw

    def _remember(self, booking_id: str, raw: str) -> None:
        with self._recent_lock:
            self._recent[booking_id] = raw
            self._recent.move_to_end(booking_id)
            while len(self._recent) > RECENT_RECORDS:
                self._recent.popitem(last=False)

    def _forget(self, booking_id: str) -> None:
        with self._recent_lock:
            self._recent.pop(booking_id, None)

    def _recalled(self, booking_id: str) -> str | None:
        with self._recent_lock:
            return self._recent.get(booking_id)

    def load_many(self, booking_ids: Iterable[str]) -> list[Booking]:
        ids = list(booking_ids)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for booking_id in ids:
            pipe.hget(keys.booking(booking_id), "json")
        return [Booking.from_json(decode_record(str(raw))) for raw in pipe.execute() if raw]

    def timeline(self, booking_id: str) -> list[TimelineEntry]:
        entries = self.redis.lrange(keys.timeline(booking_id), 0, -1)
        return [read_timeline_entry(str(entry)) for entry in entries]

    def ids_in_state(
        self, state: State, *, after: tuple[float, str] | None = None, limit: int = 50
    ) -> list[tuple[str, float]]:
        """Booking ids in `state` by creation time, then id, strictly after `after`.

        The cursor is (score, id), not the score alone, so bookings created in the same
        microsecond are neither skipped nor repeated across pages.
        """
        low: float | str = after[0] if after is not None else "-inf"
        # Ties at the cursor's score are rare; fetching a few extra rows absorbs them.
        rows = self.redis.zrangebyscore(
            keys.by_state(state.value), low, "+inf", start=0, num=limit + 64, withscores=True
        )
        pairs = [(str(member), float(score)) for member, score in cast(list[Any], rows)]
        if after is not None:
            pairs = [(m, sc) for m, sc in pairs if sc > after[0] or m > after[1]]
        pairs.sort(key=lambda pair: (pair[1], pair[0]))
        return pairs[:limit]

    # -- writes --------------------------------------------------------------
    def create(self, booking: Booking, *, reason: str, task_id: str | None = None) -> bool:
        """Store a new record; False if a booking with this id already exists."""
        entry = timeline_entry(None, booking.state, reason, task_id, booking.created_at)
        return self._write(None, booking, [entry]) == _WRITTEN

    def update(
        self,
        booking_id: str,
        transition: Callable[[Booking], Change | None],
        *,
        task_id: str | None = None,
        attempts: int = 8,
        current: Booking | None = None,
        index_score: float | None = None,
        unless_payment_waiting: bool = False,
        applies_event: str | None = None,
    ) -> UpdateResult:
        """Apply `transition` with optimistic concurrency: load, compute, compare-and-set.

        `transition` is a pure function of the record (it may be called several times if
        another writer wins the race). It returns None when nothing is to change, which
        makes every step idempotent: run twice, the second run finds nothing to do.
        `current`, a record the caller has just read, saves the first load; if it is
        stale the compare-and-set fails and the record is read again. `index_score` is
        the deadline-index score the caller knows the booking holds (a sweeper's lease):
        a closing write drops the entry only if it still has that score.

        `unless_payment_waiting`: the write is refused, atomically with the compare-and-set,
        while a successful payment event waits on the booking (`payment_received`, not yet
        applied): PaymentWaitingError, nothing written (a cancel must not close a paid
        booking). `applies_event`: a received payment event this write applies, dropped
        from the booking's pending set with the write itself.
        """
        preloaded = current
        raw: str | None
        recalled = self._recalled(booking_id) if current is None else None
        tries = 0
        while tries < attempts:
            guess = False
            if preloaded is not None:
                current, raw = preloaded, preloaded.to_json()
            elif recalled is not None:
                raw, guess = recalled, True
                current = Booking.from_json(raw)
            else:
                raw = self._load_raw(booking_id)
                current = Booking.from_json(raw) if raw else None
            preloaded = recalled = None
            if current is None or raw is None:
                return UpdateResult(None)
            # The transition works on its own copy, parsed again from the stored JSON:
            # three times cheaper than a deep copy of the model, and the same record.
            change = transition(Booking.from_json(raw))
            if change is None:
                if guess:
                    continue  # "nothing to do" is only believed of the stored record
                return UpdateResult(current, previous_state=current.state)
            tries += 1
            new = change.booking
            if new.state != current.state and not can_move(current.state, new.state):
                raise IllegalTransitionError(f"{current.state} -> {new.state} ({change.reason})")
            if new.state != current.state:
                # Progress: a claim on the old state's step ends (unless the transition
                # took a new one), so does a wait (unless the transition set its own);
                # another task's step starts with a fresh budget.
                if new.claim == current.claim:
                    new.claim = None
                if new.retry_at == current.retry_at:
                    new.retry_at = None
                if DRIVER.get(new.state) != DRIVER.get(current.state):
                    new.step_failures = 0
                    new.unexpected_failures = 0
            new.version = current.version + 1
            new.updated_at = utcnow()
            entry = timeline_entry(
                current.state if (new.state != current.state or change.note) else None,
                new.state,
                change.reason,
                task_id,
                new.updated_at,
            )
            written = self._write(
                current,
                new,
                [entry],
                index_score,
                guard=unless_payment_waiting,
                applied=applies_event,
            )
            if written == _REFUSED:
                raise PaymentWaitingError(f"booking {booking_id}: a successful payment waits")
            if written == _WRITTEN:
                entered = [new.state] if new.state != current.state else []
                return UpdateResult(new, True, current.state, entered)
        raise ConcurrentUpdateError(f"booking {booking_id}: too many concurrent updates")

    def _sha(self, source: str) -> str:
        sha = self._scripts.get(source)
        if sha is None:
            sha = self._scripts[source] = str(self.redis.script_load(source))
        return sha

    def run_script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by its cached SHA1 (loaded once; reloaded on NOSCRIPT)."""
        results = self._pipelined(
            lambda pipe: _evalsha(pipe, self._sha(source), len(keys), *keys, *args)
        )
        return results[0]

    def _pipelined(self, build: Callable[[Any], None]) -> list[Any]:
        """Run a non-transactional pipeline whose scripts go as EVALSHA.

        redis-py's own Script objects make every pipeline ask SCRIPT EXISTS first (one
        more round trip per write); here a NOSCRIPT answer (Redis restarted or flushed
        its scripts) reloads them and runs the pipeline again, which is safe because
        every command in these pipelines is idempotent or a compare-and-set.
        """
        for _ in range(2):
            pipe = self.redis.pipeline(transaction=False)
            build(pipe)
            results: list[Any] = pipe.execute(raise_on_error=False)
            if not any(isinstance(r, redis.exceptions.NoScriptError) for r in results):
                for result in results:
                    if isinstance(result, Exception):
                        raise result
                return results
            self._scripts.clear()
        raise redis.exceptions.NoScriptError("scripts could not be loaded")

    def _write(
        self,
        old: Booking | None,
        new: Booking,
        entries: list[str],
        index_score: float | None = None,
        *,
        guard: bool = False,
        applied: str | None = None,
    ) -> int:
        """Write `new` if the stored version is still `old`'s: _WRITTEN, _LOST (another
        writer won) or _REFUSED (`guard`: a successful payment event waits)."""
        deadline = next_deadline(new, self.deadline_policy)
        ttl = self.retention_seconds if new.state in CLOSED else 0
        as_json = new.to_json()
        cas_args = [
            -1 if old is None else old.version,
            new.version,
            new.state.value,
            compress_json(as_json),
            ttl,
            TIMELINE_CAP,
            "1" if guard else "0",
            applied or "",
        ]
        cas_keys = [keys.booking(new.id), keys.timeline(new.id), keys.payments(new.id)]
        callback = self._callback_on_entry(old, new)
        if self._one_round_trip:
            written = self._write_all(
                old, new, cas_keys, cas_args, entries, index_score, deadline, callback
            )
        else:

            def write(pipe: Any) -> None:
                # The deadline ahead of the record: a crash after this leaves a stale
                # hint, never a gap. The listing index follows the record (_clean_after).
                if deadline is not None:
                    pipe.zadd(keys.DEADLINES, {new.id: _score(deadline)})
                _evalsha(pipe, self._sha(_CAS_SCRIPT), 3, *cas_keys, *cas_args, *entries)

            written = int(self._pipelined(write)[-1])
            if written == _WRITTEN:
                self._clean_after(old, new, deadline, index_score, callback)
        if written == _WRITTEN:
            self._remember(new.id, as_json)
        else:
            self._forget(new.id)
        return written

    def _callback_on_entry(self, old: Booking | None, new: Booking) -> str | None:
        """The merchant callback the state `new` enters sends (recorded as expected with
        the write: the sweeper sends it if its message is lost), or None."""
        if old is None or old.state == new.state:
            return None
        return CALLBACK_ON_ENTRY.get(new.state)

    def _callback_due(self) -> float:
        return time.time() + self.deadline_policy.redrive_after.total_seconds()

    def _write_all(
        self,
        old: Booking | None,
        new: Booking,
        cas_keys: list[str],
        cas_args: list[Any],
        entries: list[str],
        index_score: float | None,
        deadline: datetime | None,
        callback: str | None,
    ) -> int:
        moved, drop_score = self._cleaning(old, new, deadline, index_score)
        args = [
            *cas_args,
            "" if deadline is None else repr(_score(deadline)),
            repr(_score(new.created_at)),
            new.id,
            "1" if moved else "0",
            "" if drop_score is None else repr(drop_score),
            self.retention_seconds if new.state in CLOSED else "",
            callback or "",
            repr(self._callback_due()) if callback else "",
            *entries,
        ]
        old_state = old.state if old is not None else new.state
        script_keys = [
            *cas_keys,
            keys.DEADLINES,
            keys.by_state(new.state.value),
            keys.by_state(old_state.value),
            keys.callbacks(new.id),
            keys.CALLBACKS_DUE,
        ]
        return int(self.run_script(_WRITE_ALL_SCRIPT, script_keys, args))

    def _cleaning(
        self,
        old: Booking | None,
        new: Booking,
        deadline: datetime | None,
        index_score: float | None,
    ) -> tuple[bool, float | None]:
        """After a write: did the state move, and which deadline score (if any) to drop."""
        old_deadline = next_deadline(old, self.deadline_policy) if old else None
        known_score = index_score
        if known_score is None and old_deadline is not None:
            known_score = _score(old_deadline)
        drop = known_score if deadline is None and known_score is not None else None
        return old is not None and old.state != new.state, drop

    def _clean_after(
        self,
        old: Booking | None,
        new: Booking,
        deadline: datetime | None,
        index_score: float | None,
        callback: str | None = None,
    ) -> None:
        state_moved, known_score = self._cleaning(old, new, deadline, index_score)
        # The listing index follows the compare-and-set: a new booking is listed here.
        moved = old is None or state_moved
        drop_hint = known_score is not None
        if not (drop_hint or moved or new.state in CLOSED or callback):
            return

        def clean(pipe: Any) -> None:
            if moved:
                # After the compare-and-set: only the writer that won lists the booking.
                pipe.zadd(keys.by_state(new.state.value), {new.id: _score(new.created_at)})
            if old is not None and moved:
                pipe.zrem(keys.by_state(old.state.value), new.id)
            if drop_hint and known_score is not None:
                # Only the entry this writer knew: if a concurrent writer (a late payment
                # reopening the booking) re-scored it meanwhile, its entry must stay.
                _evalsha(
                    pipe,
                    self._sha(_DROP_HINT_SCRIPT),
                    1,
                    keys.DEADLINES,
                    new.id,
                    repr(known_score),
                )
            if new.state in CLOSED:
                # Callback delivery records expire with the booking (retention TTL).
                pipe.expire(keys.callbacks(new.id), self.retention_seconds)
            if callback:
                member = f"{new.id}|{callback}"
                pipe.zadd(keys.CALLBACKS_DUE, {member: self._callback_due()}, nx=True)

        self._pipelined(clean)

    # -- indexes (sweeper) -----------------------------------------------------
    def reindex(self, bookings: Iterable[Booking]) -> None:
        """Repair the listing index: each booking listed under its current state (a
        writer that died between its compare-and-set and the index write)."""
        rows = list(bookings)
        if not rows:
            return
        pipe = self.redis.pipeline(transaction=False)
        for booking in rows:
            pipe.zadd(keys.by_state(booking.state.value), {booking.id: _score(booking.created_at)})
        pipe.execute()

    def record_sweep_stats(
        self, key: str, actions: dict[str, int], at: str, seconds: float
    ) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for action, count in actions.items():
            pipe.hincrby(key, action, count)
        pipe.hincrby(key, "runs", 1)
        pipe.hset(key, mapping={"last_run_at": at, "last_ms": f"{seconds * 1000:.1f}"})
        pipe.execute()

    def prune_listings(self, states: Iterable[State], horizon: float) -> None:
        """Drop listing entries of `states` scored before `horizon` (records expired)."""
        pipe = self.redis.pipeline(transaction=False)
        for state in states:
            pipe.zremrangebyscore(keys.by_state(state.value), "-inf", horizon)
        pipe.execute()

    def drop_deadlines(self, booking_ids: Iterable[str]) -> None:
        ids = list(booking_ids)
        if ids:
            self.redis.zrem(keys.DEADLINES, *ids)

    def set_deadline(self, booking_id: str, moment: float, *, only_earlier: bool = True) -> None:
        """Ask the sweeper to look at a booking at `moment` (never later than asked
        before, unless `only_earlier` is False)."""
        if only_earlier:
            self.redis.zadd(keys.DEADLINES, {booking_id: moment}, lt=True)
        else:
            self.redis.zadd(keys.DEADLINES, {booking_id: moment})

    # -- liveness of claim owners ----------------------------------------------
    def heartbeat(self, owner: str, ttl_seconds: int) -> None:
        self.redis.set(keys.alive(owner), "1", ex=ttl_seconds)

    def alive(self, owners: Iterable[str | None]) -> set[str]:
        """Which of these owners' liveness keys exist (None is nobody)."""
        names = sorted({o for o in owners if o})
        if not names:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for owner in names:
            pipe.exists(keys.alive(owner))
        return {owner for owner, found in zip(names, pipe.execute(), strict=True) if found}

    # -- received payment events -------------------------------------------------
    def payment_event(self, event_key: str) -> tuple[str, PaymentEventRecord] | None:
        """The claimed event as stored (for a compare-and-set take-over) and read."""
        raw = self.redis.get(keys.payment_event(event_key))
        return (str(raw), PaymentEventRecord.model_validate_json(raw)) if raw else None

    def payment_event_and_booking(
        self, event_key: str, booking_id: str
    ) -> tuple[PaymentEventRecord | None, Booking | None]:
        """A received payment event and its booking, read in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.payment_event(event_key))
        pipe.hget(keys.booking(booking_id), "json")
        raw, stored = pipe.execute()
        as_json = self._decoded(booking_id, stored)
        booking = Booking.from_json(as_json) if as_json else None
        return (PaymentEventRecord.model_validate_json(raw) if raw else None), booking

    def pending_payment_events(self, booking_ids: Iterable[str]) -> dict[str, list[str]]:
        """Received successful payment events not yet applied, per booking (one trip)."""
        ids = list(booking_ids)
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for booking_id in ids:
            pipe.smembers(keys.payments(booking_id))
        found = pipe.execute()
        return {
            i: sorted(str(m) for m in members)
            for i, members in zip(ids, found, strict=True)
            if members
        }

    def claim_payment_event(
        self,
        event_key: str,
        booking_id: str,
        record: str,
        ttl_seconds: int,
        *,
        success_due: float | None,
    ) -> tuple[bool, bool]:
        """Claim a provider event by its key (SET NX `record` for `ttl_seconds`) and learn
        whether its booking exists: (claimed, exists). With `success_due` (a successful
        event), claimed for a booking that exists, the event is also kept on the booking
        as `payment_received` does. One round trip on a single server (a script), two on
        a cluster (the keys live in several slots)."""
        if self._one_round_trip:
            script_keys = [
                keys.payment_event(event_key),
                keys.booking(booking_id),
                keys.payments(booking_id),
                keys.DEADLINES,
            ]
            due = "" if success_due is None else repr(success_due)
            args = [record, ttl_seconds, event_key, due, booking_id]
            claimed, exists = self.run_script(_CLAIM_EVENT, script_keys, args)
            return bool(claimed), bool(exists)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.payment_event(event_key), record, nx=True, ex=ttl_seconds)
        pipe.exists(keys.booking(booking_id))
        claimed, exists = pipe.execute()
        if claimed and exists and success_due is not None:
            self.payment_received(booking_id, event_key, due=success_due, ttl_seconds=ttl_seconds)
        return bool(claimed), bool(exists)

    def payment_received(
        self, booking_id: str, event_key: str, *, due: float, ttl_seconds: int
    ) -> None:
        """Keep a successful event on the booking until applied, and make the booking due
        by `due` (never later than it was)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(keys.payments(booking_id), event_key)
        pipe.expire(keys.payments(booking_id), ttl_seconds)
        pipe.zadd(keys.DEADLINES, {booking_id: due}, lt=True)  # LT still adds a new one
        pipe.execute()

    def payment_applied(self, booking_id: str, event_key: str) -> None:
        self.redis.srem(keys.payments(booking_id), event_key)

    # -- merchant callback deliveries ----------------------------------------------
    def callback_record(self, booking_id: str, event_type: str) -> str | None:
        raw = self.redis.hget(keys.callbacks(booking_id), event_type)
        return None if raw is None else str(raw)

    def callback_and_booking(
        self, booking_id: str, event_type: str
    ) -> tuple[str | None, Booking | None]:
        """A callback's delivery record and the booking, read in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.callbacks(booking_id), event_type)
        pipe.hget(keys.booking(booking_id), "json")
        raw, stored = pipe.execute()
        as_json = self._decoded(booking_id, stored)
        booking = Booking.from_json(as_json) if as_json else None
        return (None if raw is None else str(raw)), booking

    def callback_swap(
        self,
        booking_id: str,
        event_type: str,
        old: str | None,
        new: str,
        *,
        due: float | None,
    ) -> bool:
        """Compare-and-set a callback's delivery record; `due` re-scores it in the
        callbacks-due index (None: out of it). False if another writer changed it.
        One round trip on a single server; on a cluster the index (another slot) follows
        the swap."""
        member = f"{booking_id}|{event_type}"
        swap_args = ["" if old is None else old, new]
        if self._one_round_trip:
            script_keys = [keys.callbacks(booking_id), keys.CALLBACKS_DUE]
            args = [event_type, *swap_args, member, "" if due is None else repr(due)]
            return bool(self.run_script(_CALLBACK_SWAP_ALL, script_keys, args))
        swapped = self.run_script(
            _CALLBACK_SWAP, [keys.callbacks(booking_id)], [event_type, *swap_args]
        )
        if not swapped:
            return False
        if due is None:
            self.redis.zrem(keys.CALLBACKS_DUE, member)
        else:
            self.redis.zadd(keys.CALLBACKS_DUE, {member: due})
        return True

    def callback_expected(self, booking_id: str, event_type: str, due: float) -> None:
        """A callback was enqueued: if its message is lost, the sweeper sends it at `due`."""
        self.redis.zadd(keys.CALLBACKS_DUE, {f"{booking_id}|{event_type}": due}, nx=True)

    def claim_due_callbacks(self, now: float, limit: int, lease: float) -> list[tuple[str, str]]:
        due = self.run_script(_CLAIM_DUE, [keys.CALLBACKS_DUE], [now, limit, repr(lease)])
        pairs = []
        for member in due:
            booking_id, _, event_type = str(member).partition("|")
            pairs.append((booking_id, event_type))
        return pairs

    def claim_due(self, now: float, limit: int, lease: float) -> list[str]:
        """Atomically take up to `limit` due booking ids, moving each to `lease`."""
        due = self.run_script(_CLAIM_DUE, [keys.DEADLINES], [now, limit, repr(lease)])
        return [str(member) for member in due]


# KEYS: sorted set. ARGV: now, limit, lease score. Due members, each moved to the lease.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return due
"""

# KEYS: event claim, booking hash, the booking's received payment events, deadline index.
# ARGV: claim record, ttl, event key, due score ('' : not a success), booking id.
# Returns {claimed, booking exists}; a success claimed for an existing booking is kept on
# it (as `payment_received`: SADD with the ttl, due at the latest at ARGV[4]).
_CLAIM_EVENT = """
local claimed = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) and 1 or 0
local exists = redis.call('EXISTS', KEYS[2])
if claimed == 1 and exists == 1 and ARGV[4] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
  redis.call('ZADD', KEYS[4], 'LT', ARGV[4], ARGV[5])
end
return {claimed, exists}
"""

# KEYS: callbacks hash. ARGV: field, expected value ('' = absent), new value.
_CALLBACK_SWAP_FRAGMENT = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (ARGV[2] == '' and current) or (ARGV[2] ~= '' and current ~= ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
"""
_CALLBACK_SWAP = _CALLBACK_SWAP_FRAGMENT + "return 1\n"
# The same, then the callbacks-due index (KEYS[2]) on a single server: ARGV[4] member,
# ARGV[5] due score ('' = out of the index).
_CALLBACK_SWAP_ALL = _CALLBACK_SWAP_FRAGMENT + """
if ARGV[5] == '' then redis.call('ZREM', KEYS[2], ARGV[4])
else redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4]) end
return 1
"""
