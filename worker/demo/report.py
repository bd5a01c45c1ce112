"""The demo's verdict and summary, from the front's views and the sandbox's own records.

A booking the demo paid passes when Korus (the sandbox) holds exactly one order for each
of its reservations and the booking is completed; the run passes when every booking
does. Nothing here trusts the worker's word alone: orders are counted from the
sandbox's order list, by external reference (the booking id) and by reservation.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from worker.booking.states import CLOSED
from worker.demo.traffic import Payment

# Webhook answers meaning "recorded" (design.md): a first delivery, or a repeat of one.
ACCEPTED = frozenset({"enqueued", "duplicate"})
CLOSED_STATES = frozenset(s.value for s in CLOSED)


@dataclass
class DemoReport:
    bookings: int
    states: Counter[str]
    orders_per_booking: Counter[int]
    duplicate_orders: int
    exactly_one: int
    seconds: float
    products: dict[str, Counter[str]] = field(default_factory=dict)
    korus_outcomes: Counter[str] = field(default_factory=Counter)
    to_tickets: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    timeline_of: dict[str, Any] | None = None
    sweeps: int = 0

    @property
    def ok(self) -> bool:
        """Every booking is paid by the demo, so anything but completed is a failure."""
        completed = self.states.get("completed", 0)
        return not self.problems and self.duplicate_orders == 0 and completed == self.bookings


def _last_segment(reference: object) -> str:
    """A reservation id from an id or an IRI (the sandbox lists IRIs, the front ids)."""
    return str(reference).rstrip("/").rsplit("/", 1)[-1]


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` in 0..1); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def _entered(view: dict[str, Any], state: str) -> float | None:
    """When the booking last entered `state`, from its timeline (epoch seconds)."""
    moments = [e["at"] for e in view.get("timeline", []) if e.get("to") == state]
    return datetime.fromisoformat(moments[-1]).timestamp() if moments else None


def build_report(
    views: list[dict[str, Any]],
    product_of: dict[str, str],
    payments: dict[str, Payment],
    orders: list[dict[str, Any]],
    korus_outcomes: Counter[str],
    seconds: float,
) -> DemoReport:
    per_booking: Counter[str] = Counter(str(o["externalReference"]) for o in orders)
    per_reservation: Counter[str] = Counter(_last_segment(o["reservation"]) for o in orders)
    duplicates = sum(1 for n in per_reservation.values() if n > 1)
    problems: list[str] = []
    exactly_one = 0
    to_tickets: list[float] = []
    products: dict[str, Counter[str]] = {}
    for view in views:
        booking_id, state = str(view["id"]), str(view["state"])
        products.setdefault(product_of.get(booking_id, "?"), Counter())[state] += 1
        holds = [_last_segment(r["id"]) for r in view.get("reservations", [])]
        ordered = {h: per_reservation.get(h, 0) for h in holds}
        one_each = bool(holds) and all(n == 1 for n in ordered.values())
        payment = payments.get(booking_id)
        if payment is not None and payment.outcome not in ACCEPTED:
            problems.append(f"{booking_id}: the payment webhook was answered {payment.outcome}")
        if booking_id in payments:
            if one_each and per_booking.get(booking_id, 0) == len(holds):
                if state == "completed":
                    exactly_one += 1
            else:
                problems.append(
                    f"{booking_id}: paid, {per_booking.get(booking_id, 0)} order(s) "
                    f"for {len(holds)} reservation(s) ({state})"
                )
        if state not in CLOSED_STATES:
            problems.append(f"{booking_id}: still {state} when the demo stopped waiting")
        elif state != "completed":
            problems.append(f"{booking_id}: ended {state} ({view.get('reason') or 'no reason'})")
        done = _entered(view, "completed")
        if booking_id in payments and done is not None:
            to_tickets.append(max(0.0, done - payments[booking_id].accepted_at))
    return DemoReport(
        bookings=len(views),
        states=Counter(str(v["state"]) for v in views),
        orders_per_booking=Counter(per_booking.get(str(v["id"]), 0) for v in views),
        duplicate_orders=duplicates,
        exactly_one=exactly_one,
        seconds=seconds,
        products=products,
        korus_outcomes=korus_outcomes,
        to_tickets=to_tickets,
        problems=problems,
        timeline_of=_most_eventful(views, product_of),
    )


def _most_eventful(views: list[dict[str, Any]], product_of: dict[str, str]) -> dict[str, Any]:
    """The booking whose timeline tells the most: the longest, late documents first on
    a tie (its documents_pending step shows the documents wait)."""

    def weight(view: dict[str, Any]) -> tuple[int, bool]:
        late = "Late" in product_of.get(str(view["id"]), "")
        return len(view.get("timeline", [])), late

    return max(views, key=weight) if views else {}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _print(console: Console, title: str, table: Table) -> None:
    """A heading line, then the table (a table's own title would wrap to its width)."""
    console.print()
    console.print(title, style="bold", highlight=False, markup=False, soft_wrap=True)
    console.print(table)


def render(report: DemoReport, console: Console, product_of: dict[str, str]) -> None:
    """The summary tables, one booking's timeline, then the verdict lines."""
    summary = Table()
    summary.add_column("state")
    summary.add_column("bookings", justify="right")
    for state, count in sorted(report.states.items()):
        summary.add_row(state, str(count))
    _print(console, "Bookings by final state", summary)

    by_product = Table()
    by_product.add_column("product")
    by_product.add_column("bookings", justify="right")
    by_product.add_column("completed", justify="right")
    for product, states in sorted(report.products.items()):
        by_product.add_row(product, str(sum(states.values())), str(states.get("completed", 0)))
    _print(console, "Bookings by product", by_product)

    orders = Table()
    orders.add_column("orders")
    orders.add_column("bookings", justify="right")
    for n, count in sorted(report.orders_per_booking.items()):
        orders.add_row(str(n), str(count))
    _print(console, "Orders per booking (sandbox records)", orders)

    calls = Table()
    calls.add_column("outcome")
    calls.add_column("calls", justify="right")
    for outcome, count in sorted(report.korus_outcomes.items()):
        calls.add_row(outcome, str(count))
    calls.add_row("total", str(sum(report.korus_outcomes.values())), style="bold")
    _print(console, "Korus calls by outcome (fleet)", calls)

    latency = Table()
    latency.add_column("bookings", justify="right")
    latency.add_column("p50", justify="right")
    latency.add_column("p95", justify="right")
    latency.add_column("max", justify="right")
    latency.add_row(
        str(len(report.to_tickets)),
        _seconds(percentile(report.to_tickets, 0.50)),
        _seconds(percentile(report.to_tickets, 0.95)),
        _seconds(max(report.to_tickets) if report.to_tickets else None),
    )
    _print(console, "Webhook accepted → tickets available", latency)

    view = report.timeline_of
    if view:
        entries = view.get("timeline", [])
        start = datetime.fromisoformat(entries[0]["at"]) if entries else None
        timeline = Table()
        timeline.add_column("at")
        timeline.add_column("+s", justify="right")
        timeline.add_column("from", no_wrap=True)
        timeline.add_column("to", no_wrap=True)
        timeline.add_column("reason")
        for entry in entries:
            at = datetime.fromisoformat(entry["at"])
            offset = (at - start).total_seconds() if start else 0.0
            timeline.add_row(
                at.strftime("%H:%M:%S.%f")[:-3],
                f"{offset:.2f}",
                entry.get("from") or "-",
                entry["to"],
                entry.get("reason") or "",
            )
        product = product_of.get(str(view["id"]), "?")
        _print(console, f"Timeline of {view['id']} ({product})", timeline)

    console.print()
    console.print(f"bookings:            {report.bookings}", highlight=False)
    console.print(
        f"completed with exactly one order per reservation: {report.exactly_one}",
        highlight=False,
    )
    console.print(f"reservations ordered twice: {report.duplicate_orders}", highlight=False)
    console.print(f"sweeps by the beat:  {report.sweeps}", highlight=False)
    console.print(f"time:                {report.seconds:.1f} s", highlight=False)
