"""The demo's verdict: every paid booking has exactly one order per reservation."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from worker.demo.report import build_report, percentile
from worker.demo.traffic import Payment

T0 = 1_800_000_000.0


def view(booking_id: str, state: str = "completed", holds: int = 1) -> dict[str, Any]:
    return {
        "id": booking_id,
        "state": state,
        "reservations": [{"id": f"r-{booking_id}-{n}"} for n in range(holds)],
        "timeline": [
            {"at": "2027-01-15T08:00:00+00:00", "from": None, "to": "received"},
            {"at": "2027-01-15T08:00:02.500000+00:00", "from": "ordered", "to": state},
        ],
    }


def order(booking_id: str, hold: int = 0) -> dict[str, Any]:
    # The sandbox lists reservations by IRI; the front shows their ids.
    return {
        "externalReference": booking_id,
        "reservation": f"/v1/booking/reservations/r-{booking_id}-{hold}",
    }


def paid(*ids: str) -> dict[str, Payment]:
    return {i: Payment(i, "enqueued", T0) for i in ids}


def report_of(views: list[dict[str, Any]], orders: list[dict[str, Any]]) -> Any:
    ids = [str(v["id"]) for v in views]
    return build_report(views, {}, paid(*ids), orders, Counter(), 1.0)


def test_one_order_per_reservation_of_every_paid_booking_passes() -> None:
    report = report_of([view("a"), view("b", holds=2)], [order("a"), order("b"), order("b", 1)])

    assert report.ok, report.problems
    assert report.exactly_one == 2
    assert report.orders_per_booking == Counter({1: 1, 2: 1})


def test_a_reservation_ordered_twice_fails_the_run() -> None:
    report = report_of([view("a"), view("b")], [order("a"), order("b"), order("b")])

    assert not report.ok
    assert report.duplicate_orders == 1
    assert report.exactly_one == 1
    assert any(p.startswith("b: paid, 2 order(s)") for p in report.problems)


def test_a_paid_booking_without_an_order_fails_the_run() -> None:
    report = report_of([view("a"), view("b", state="order_uncertain")], [order("a")])

    assert not report.ok
    assert any(p.startswith("b: paid, 0 order(s)") for p in report.problems)
    assert report.states == Counter({"completed": 1, "order_uncertain": 1})


def test_a_completed_booking_whose_order_the_sandbox_does_not_list_fails_the_run() -> None:
    report = report_of([view("a")], [])

    assert not report.ok
    assert report.exactly_one == 0


def test_time_to_tickets_runs_from_the_accepted_webhook_to_the_completed_entry() -> None:
    completed_at = view("a")["timeline"][-1]["at"]
    accepted = datetime.fromisoformat(completed_at).timestamp() - 1.25
    report = build_report(
        [view("a")], {}, {"a": Payment("a", "enqueued", accepted)}, [order("a")], Counter(), 1.0
    )

    assert report.to_tickets == [1.25]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]

    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([], 0.5) is None
