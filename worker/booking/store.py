"""Booking state in Redis: every write is a compare-and-set that appends to the timeline.

Layout (see keys.py): one hash per booking (`state`, `version`, `json`), a capped
timeline list, both under the booking's hash tag, so the Lua script touches keys of one
slot only and also runs on Redis Cluster. The global indexes (deadlines, bookings by
state) cannot join that script on a cluster; they are written *ahead* of the record and
cleaned *after* it, so an index may hold a stale entry (readers re-check the record) but
never misses a booking.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import redis

from worker.booking import keys
from worker.booking.deadlines import DeadlinePolicy, next_deadline
from worker.booking.record import Booking, utcnow
from worker.booking.states import CLOSED, State, can_move

TIMELINE_CAP = 200

# KEYS: booking hash, timeline list.
# ARGV: expected version (-1: must not exist), new version, new state, json, ttl seconds
#       (0: keep forever), timeline cap, then timeline entries.
_CAS_SCRIPT = """
local current = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '-1' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3], 'json', ARGV[4])
for i = 7, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
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


class ConcurrentUpdateError(RuntimeError):
    """The record kept changing under us; the caller's task retries later."""


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


def timeline_entry(
    source: State | None, target: State, reason: str, task_id: str | None, at: datetime
) -> str:
    return json.dumps(
        {
            "at": at.isoformat(),
            "from": source.value if source else None,
            "to": target.value,
            "reason": reason,
            "task_id": task_id,
        },
        separators=(",", ":"),
    )


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
    deadline and by-state entries, the service checks that a paid booking exists, the
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

    # -- reads ---------------------------------------------------------------
    def load(self, booking_id: str) -> Booking | None:
        raw = self.redis.hget(keys.booking(booking_id), "json")
        return Booking.from_json(raw) if raw else None

    def load_many(self, booking_ids: Iterable[str]) -> list[Booking]:
        ids = list(booking_ids)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for booking_id in ids:
            pipe.hget(keys.booking(booking_id), "json")
        return [Booking.from_json(raw) for raw in pipe.execute() if raw]

    def timeline(self, booking_id: str) -> list[dict[str, Any]]:
        entries = self.redis.lrange(keys.timeline(booking_id), 0, -1)
        return [json.loads(entry) for entry in entries]

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
        return self._write(None, booking, [entry])

    def update(
        self,
        booking_id: str,
        transition: Callable[[Booking], Change | None],
        *,
        task_id: str | None = None,
        attempts: int = 8,
        current: Booking | None = None,
        index_score: float | None = None,
    ) -> UpdateResult:
        """Apply `transition` with optimistic concurrency: load, compute, compare-and-set.

        `transition` is a pure function of the record (it may be called several times if
        another writer wins the race). It returns None when nothing is to change, which
        makes every step idempotent: run twice, the second run finds nothing to do.
        `current`, a record the caller has just read, saves the first load; if it is
        stale the compare-and-set fails and the record is read again. `index_score` is
        the deadline-index score the caller knows the booking holds (a sweeper's lease):
        a closing write drops the entry only if it still has that score.
        """
        preloaded = current
        for _ in range(attempts):
            current = preloaded if preloaded is not None else self.load(booking_id)
            preloaded = None
            if current is None:
                return UpdateResult(None)
            change = transition(current.model_copy(deep=True))
            if change is None:
                return UpdateResult(current, previous_state=current.state)
            new = change.booking
            if new.state != current.state and not can_move(current.state, new.state):
                raise IllegalTransitionError(f"{current.state} -> {new.state} ({change.reason})")
            new.version = current.version + 1
            new.updated_at = utcnow()
            entry = timeline_entry(
                current.state if (new.state != current.state or change.note) else None,
                new.state,
                change.reason,
                task_id,
                new.updated_at,
            )
            if self._write(current, new, [entry], index_score):
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
    ) -> bool:
        deadline = next_deadline(new, self.deadline_policy)
        ttl = self.retention_seconds if new.state in CLOSED else 0

        def write(pipe: Any) -> None:
            # Indexes ahead of the record: a crash after this leaves a stale hint, never
            # a gap.
            if deadline is not None:
                pipe.zadd(keys.DEADLINES, {new.id: _score(deadline)})
            pipe.zadd(keys.by_state(new.state.value), {new.id: _score(new.created_at)})
            _evalsha(
                pipe,
                self._sha(_CAS_SCRIPT),
                2,
                keys.booking(new.id),
                keys.timeline(new.id),
                -1 if old is None else old.version,
                new.version,
                new.state.value,
                new.to_json(),
                ttl,
                TIMELINE_CAP,
                *entries,
            )

        written = bool(self._pipelined(write)[-1])
        if written:
            self._clean_after(old, new, deadline, index_score)
        return written

    def _clean_after(
        self,
        old: Booking | None,
        new: Booking,
        deadline: datetime | None,
        index_score: float | None,
    ) -> None:
        old_deadline = next_deadline(old, self.deadline_policy) if old else None
        known_score = index_score
        if known_score is None and old_deadline is not None:
            known_score = _score(old_deadline)
        drop_hint = deadline is None and known_score is not None
        moved = old is not None and old.state != new.state
        if not (drop_hint or moved or new.state in CLOSED):
            return

        def clean(pipe: Any) -> None:
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

        self._pipelined(clean)
