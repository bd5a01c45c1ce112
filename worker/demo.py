"""`booking-worker demo`: the whole flow on one machine, through real processes.

Starts Redis (embedded unless a URL is given), the Korus sandbox and Celery workers;
creates bookings through the same entry point as the merchant API, pays each through the
same entry point as the payment webhooks, and reports how many completed with exactly
one order per reservation, from the sandbox's own records.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.booking.requests import BookingRequest, PaymentEvent
from worker.booking.states import CLOSED, State
from worker.korus.stats import KORUS_STATS
from worker.processes import (
    Proc,
    beat_proc,
    embedded_redis,
    free_port,
    sandbox_proc,
    service_env,
    wait_http,
    worker_proc,
)

# 10 % of calls to every endpoint fail, spread over every fault kind the sandbox has.
FAULT_MIX = {
    "error_rate": 0.03,
    "rate_limit_rate": 0.02,
    "timeout_before_commit_rate": 0.015,
    "timeout_after_commit_rate": 0.015,
    "drop_rate": 0.02,
}


@dataclass
class DemoReport:
    bookings: int
    states: Counter[str]
    orders_per_booking: Counter[int]
    duplicate_orders: int
    exactly_one: int
    seconds: float
    problems: list[str] = field(default_factory=list)
    korus_outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """Every booking is paid by the demo, so anything but completed is a failure."""
        completed = self.states.get("completed", 0)
        return not self.problems and self.duplicate_orders == 0 and completed == self.bookings


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url:
        yield url
    else:
        with embedded_redis() as embedded:
            yield embedded


def fault_spec(rate: float) -> str:
    scale = rate / 0.10
    parts = [f"{name}={value * scale:.4f}" for name, value in FAULT_MIX.items()]
    return "*:" + ",".join([*parts, "timeout_seconds=3", "retry_after=1"])


def demo_requests(catalog: dict[str, Any], count: int) -> list[BookingRequest]:
    """A mix of seeded products, discovered through the sandbox catalog."""
    products = ["Day Pass", "Timed Museum Entry", "Named Festival Pass", "Late Documents Tour"]
    out = []
    for index in range(count):
        name = products[index % len(products)]
        entry = catalog[name]
        ticket_session: dict[str, Any] = {"ticket": entry["tickets"][0]}
        if entry.get("sessions"):
            ticket_session["session"] = entry["sessions"][0]
        body: dict[str, Any] = {
            "externalReference": f"DEMO-{index:05d}",
            "items": [{"offer": entry["offer"], "quantity": 1, "ticketSessions": [ticket_session]}],
            "customer": {"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com"},
        }
        if name == "Named Festival Pass":
            body["beneficiaries"] = [
                {"firstname": "Ada", "lastname": "Lovelace", "dateOfBirth": "1990-12-10"}
            ]
        out.append(BookingRequest.model_validate(body))
    return out


def run_demo(
    *,
    redis_url: str | None,
    bookings: int,
    workers: int,
    concurrency: int,
    fault_rate: float,
    timeout: float,
    echo: Callable[[str], None],
) -> DemoReport:
    logs = Path(tempfile.mkdtemp(prefix="booking-demo-"))
    procs: list[Proc] = []
    with _redis(redis_url) as url:
        port = free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        extra = ["--documents-delay", "3"]
        if fault_rate > 0:
            extra += ["--fault", fault_spec(fault_rate)]
        overrides = {
            "KORUS_READ_TIMEOUT": "2",
            "KORUS_CONNECT_TIMEOUT": "1",
            "RETRY_BACKOFF_CAP_SECONDS": "8",
            "STUCK_AFTER_SECONDS": "30",
            # The sweeper drives retries and waits kept in Redis; a quick beat for a demo.
            "SWEEP_INTERVAL_SECONDS": "2",
        }
        env = service_env(url, sandbox_url, **overrides)
        try:
            procs.append(sandbox_proc(port, env, *extra, log=logs / "sandbox.log").start())
            wait_http(f"{sandbox_url}/_sandbox/faults")
            for n in range(workers):
                proc = worker_proc(
                    env, name=f"demo{n}", concurrency=concurrency, log=logs / f"worker{n}.log"
                )
                procs.append(proc.start())
            procs.append(beat_proc(env, log=logs / "beat.log").start())
            echo(f"redis {url}, sandbox {sandbox_url}, {workers} worker(s); logs in {logs}")
            # This process drives the bookings through the same service as the web front.
            os.environ.update(env)
            return _drive(sandbox_url, bookings, timeout, echo)
        finally:
            for proc in reversed(procs):
                proc.stop()


def _drive(sandbox_url: str, count: int, timeout: float, echo: Callable[[str], None]) -> DemoReport:
    from worker import runtime
    from worker.sandbox.admin import SandboxAdmin

    admin = SandboxAdmin(sandbox_url)
    service = runtime.service()
    calls_before = korus_outcomes(service.redis)
    started = time.monotonic()
    requests_ = demo_requests(admin.catalog(), count)
    ids = [service.start_booking(r).booking.id for r in requests_]
    paid: set[str] = set()
    deadline = started + timeout
    last_echo = 0.0
    states: Counter[str] = Counter()
    while time.monotonic() < deadline:
        current = service.store.load_many(ids)
        states = Counter(b.state.value for b in current)
        for booking in current:
            if booking.state == State.AWAITING_PAYMENT and booking.id not in paid:
                service.record_payment(
                    PaymentEvent(
                        provider="demo",
                        event_id=f"evt_{booking.id}",
                        kind="succeeded",
                        booking_id=booking.id,
                        payment_id=f"pi_{booking.id}",
                        amount_minor=booking.total_minor,
                        currency=booking.currency,
                    )
                )
                paid.add(booking.id)
        if time.monotonic() - last_echo >= 1:
            last_echo = time.monotonic()
            echo(
                f"  {states.get('completed', 0)}/{count} completed  {dict(sorted(states.items()))}"
            )
        if all(b.state in CLOSED for b in current) and len(current) == count:
            break
        time.sleep(0.2)
    seconds = time.monotonic() - started
    report = _report(admin, service.store.load_many(ids), seconds)
    report.korus_outcomes = korus_outcomes(service.redis) - calls_before
    return report


def korus_outcomes(client: Any) -> Counter[str]:
    """Korus calls of the workers by outcome (HTTP status or error class), fleet-wide."""
    totals: Counter[str] = Counter()
    for name, value in client.hgetall(KORUS_STATS).items():
        _, kind, outcome = [*str(name).split("|"), "", ""][:3]
        if kind == "count":
            totals[outcome] += int(value)
    return totals


def _report(admin: Any, bookings: list[Any], seconds: float) -> DemoReport:
    orders = admin.orders()
    per_booking: Counter[str] = Counter(o["externalReference"] for o in orders)
    per_reservation: Counter[str] = Counter(o["reservation"] for o in orders)
    duplicates = sum(1 for n in per_reservation.values() if n > 1)
    problems = []
    exactly_one = 0
    for booking in bookings:
        n = per_booking.get(booking.id, 0)
        expected = len(booking.reservations) if booking.state == State.COMPLETED else None
        if booking.state == State.COMPLETED:
            if n == expected:
                exactly_one += 1
            else:
                problems.append(f"{booking.id}: completed with {n} orders for {expected} holds")
        elif booking.payment is not None and booking.state not in CLOSED:
            problems.append(f"{booking.id}: paid but still {booking.state}")
    return DemoReport(
        bookings=len(bookings),
        states=Counter(b.state.value for b in bookings),
        orders_per_booking=Counter(per_booking.get(b.id, 0) for b in bookings),
        duplicate_orders=duplicates,
        exactly_one=exactly_one,
        seconds=seconds,
        problems=problems,
    )
