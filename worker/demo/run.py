"""One demo run: start the fleet, sell and pay through the front, report, stop.

The demo process is only a client: a shop on the merchant API and Stripe on the webhook
endpoint. Progress comes from the front's `/metrics` (bookings per state, Korus calls);
the verdict from each booking's view and the sandbox's own order list.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from korus_sandbox.admin import SandboxAdmin
from worker.booking.states import CLOSED, State
from worker.demo.bookings import Product, demo_bodies
from worker.demo.fleet import Fleet, FleetConfig, running_fleet
from worker.demo.report import DemoReport, build_report, render
from worker.demo.traffic import Payment, PaymentProvider, Samples, Shop
from worker.korus.stats import FLUSH_SECONDS as STATS_FLUSH_SECONDS
from worker.processes import embedded_redis

# Concurrent HTTP clients of the demo (shop + provider): enough to keep the front busy,
# few enough to leave the 2 cores of a small machine to the workers.
CLIENTS = 4
POLL_SECONDS = 0.5
_CLOSED = frozenset(s.value for s in CLOSED)
_IN_FLIGHT = [s.value for s in State if s not in CLOSED]


@dataclass(frozen=True)
class DemoOptions:
    bookings: int = 20
    workers: int = 1
    concurrency: int = 4
    fault_rate: float = 0.0
    timeout: float = 300.0
    redis_url: str | None = None
    serve: bool = False


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[str]:
    if url:
        yield url
    else:
        with embedded_redis() as embedded:
            yield embedded


def run_demo(options: DemoOptions, console: Console) -> DemoReport:
    """Run the demo; with `serve`, keep everything running until Ctrl-C (or SIGTERM)
    after the report. Every process is stopped before this returns or raises."""
    logs = Path(tempfile.mkdtemp(prefix="booking-demo-"))
    with _redis(options.redis_url) as redis_url:
        config = FleetConfig(
            redis_url=redis_url,
            workers=options.workers,
            concurrency=options.concurrency,
            fault_rate=options.fault_rate,
            flower=options.serve,
            logs=logs,
        )
        console.print(f"starting the fleet (logs in {logs}) ...", soft_wrap=True)
        starting = time.monotonic()
        with running_fleet(config) as fleet:
            console.print(
                f"fleet up: web {fleet.web_url}, sandbox {fleet.sandbox_url}, redis "
                f"{redis_url}, {options.workers} x (worker, payments), beat"
                + (", flower" if fleet.flower_url else "")
                + f" (started in {time.monotonic() - starting:.1f} s)",
                soft_wrap=True,
                highlight=False,
            )
            stop = threading.Event()
            try:
                report, product_of = _drive(fleet, options, console, stop)
            finally:
                stop.set()
            render(report, console, product_of)
            if options.serve:
                _serve(fleet, report, console)
            return report


def _korus_calls(samples: Samples) -> Counter[str]:
    calls: Counter[str] = Counter()
    for labels, value in samples.get("booking_worker_korus_calls_total", {}).items():
        calls[dict(labels).get("outcome", "?")] += int(value)
    return calls


def _sweeps(samples: Samples) -> int:
    """Sweeps the beat scheduled and a worker ran (the sweeper's own counter)."""
    runs = samples.get("booking_worker_sweep_actions_total", {})
    return int(sum(v for labels, v in runs.items() if dict(labels).get("action") == "runs"))


def _states(samples: Samples) -> Counter[str]:
    states: Counter[str] = Counter()
    for labels, value in samples.get("booking_worker_bookings", {}).items():
        states[dict(labels).get("state", "?")] += int(value)
    return states


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
    )


class _Traffic:
    """The shop and the payment provider of one run, sharing a small client pool."""

    def __init__(self, fleet: Fleet, stop: threading.Event) -> None:
        self.fleet = fleet
        self.shop = Shop(fleet.web_url, fleet.merchant_key, fleet.metrics_token, stop)
        self.provider = PaymentProvider(fleet.web_url, fleet.stripe_secret, stop)
        self.admin = SandboxAdmin(fleet.sandbox_url)
        self.pool = ThreadPoolExecutor(CLIENTS, thread_name_prefix="demo-client")
        self.product_of: dict[str, str] = {}  # booking id → product name
        self.payments: dict[str, Payment] = {}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.shop.close()
        self.provider.close()
        self.admin.close()

    def create(
        self, bodies: list[tuple[Product, dict[str, Any]]], advance: Callable[[], None]
    ) -> None:
        """POST every booking (CLIENTS at a time)."""
        views = self.pool.map(self.shop.create, (body for _, body in bodies))
        for (product, _), view in zip(bodies, views, strict=True):
            self.product_of[str(view["id"])] = product.name
            advance()
            self.fleet.check_alive()

    def pay_due(self) -> None:
        """Pay each of our bookings the front lists as awaiting payment, once."""
        due = [
            booking
            for booking in self.shop.listed(State.AWAITING_PAYMENT.value)
            if booking["id"] in self.product_of and booking["id"] not in self.payments
        ]
        for payment in self.pool.map(self.provider.pay, due):
            self.payments[payment.booking_id] = payment

    def views(self) -> list[dict[str, Any]]:
        return list(self.pool.map(self.shop.get, self.product_of))


def _drive(
    fleet: Fleet, options: DemoOptions, console: Console, stop: threading.Event
) -> tuple[DemoReport, dict[str, str]]:
    """Create, pay and watch every booking until all are closed or the timeout passes."""
    traffic = _Traffic(fleet, stop)
    try:
        bodies = demo_bodies(traffic.admin.catalog(), options.bookings, secrets.token_hex(4))
        before = traffic.shop.metrics()
        started = time.monotonic()
        deadline = started + options.timeout
        with _progress(console) as progress:
            total = len(bodies)
            created = progress.add_task("created", total=total, detail="")
            paid = progress.add_task("paid", total=total, detail="")
            completed = progress.add_task("completed", total=total, detail="")
            traffic.create(bodies, lambda: progress.advance(created))
            while True:
                fleet.check_alive()
                traffic.pay_due()
                # Progress from the front's per-state counts, less what was there before.
                states = _states(traffic.shop.metrics()) - _states(before)
                closed = sum(n for state, n in states.items() if state in _CLOSED)
                flight = " ".join(f"{s} {states[s]}" for s in _IN_FLIGHT if states.get(s))
                progress.update(paid, completed=len(traffic.payments))
                progress.update(completed, completed=states.get("completed", 0), detail=flight)
                timed_out = time.monotonic() >= deadline
                if closed >= total or timed_out:
                    # The counts are a hint; each booking's own view is the answer.
                    views = traffic.views()
                    if timed_out or all(v["state"] in _CLOSED for v in views):
                        break
                time.sleep(POLL_SECONDS)
        seconds = time.monotonic() - started
        # Worker processes write their Korus call counts at most once a second
        # (worker.korus.stats): wait for the last batch before reading them.
        time.sleep(STATS_FLUSH_SECONDS + 0.25)
        after = traffic.shop.metrics()
        korus = _korus_calls(after) - _korus_calls(before)
        report = build_report(
            views, traffic.product_of, traffic.payments, traffic.admin.orders(), korus, seconds
        )
        report.sweeps = _sweeps(after) - _sweeps(before)
        return report, traffic.product_of
    finally:
        stop.set()
        traffic.close()


def _serve(fleet: Fleet, report: DemoReport, console: Console) -> None:
    """Print where everything is and wait for Ctrl-C (SIGTERM), checking the fleet."""
    example = report.timeline_of["id"] if report.timeline_of else "<booking id>"
    lines = [
        "",
        "Everything keeps running; Ctrl-C stops it all.",
        f"  web front   {fleet.web_url}  (API spec /openapi.json, /metrics, /readyz)",
        f"  Flower      {fleet.flower_url}  basic auth {fleet.flower_auth}",
        f"  sandbox     {fleet.sandbox_url}  (its records: /_sandbox/orders)",
        f"  merchant API key  {fleet.merchant_key}",
        f"  metrics token     {fleet.metrics_token}  (GET /metrics with it as a Bearer token)",
        f"  logs        {fleet.logs}",
        "Try:",
        f"  curl -s -H 'Authorization: Bearer {fleet.merchant_key}' "
        f"{fleet.web_url}/v1/bookings/{example}",
    ]
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    try:
        while True:
            fleet.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping ...")
