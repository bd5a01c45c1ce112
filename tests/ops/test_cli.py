"""The operator commands of `booking-worker`, in-process (click's runner) and as the
installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from tests.ops.support import make_booking
from tests.support.booking import CUSTOMER
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.record import Booking, utcnow
from worker.booking.states import State
from worker.booking.store import BookingStore, Change
from worker.booking.task_names import TaskName
from worker.cli import main

SCRIPT = Path(sys.executable).parent / "booking-worker"


@pytest.fixture
def store(redis_client: redis.Redis) -> BookingStore:
    """Where the tests put bookings: the (flushed) database the CLI reads too."""
    return BookingStore(redis_client, retention_seconds=3600, deadline_policy=DeadlinePolicy())


def put(store: BookingStore, state: State, **fields: object) -> Booking:
    booking = make_booking(state, now=utcnow(), **fields)  # type: ignore[arg-type]
    assert store.create(booking, reason="test fixture")
    return booking


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_status_shows_a_readable_record_without_customer_data(store: BookingStore) -> None:
    booking = put(store, State.AWAITING_PAYMENT)

    code, out, _ = run("status", booking.id)

    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["FIELD", "VALUE"]
    assert f"id            {booking.id}" in lines
    assert "state         awaiting_payment" in lines
    assert "total         40.00 eur" in lines
    assert not any(value in out for value in CUSTOMER.values())


def test_status_json_is_the_record_without_customer_data(store: BookingStore) -> None:
    offer = "/v1/ticketing/catalogs/c/offers/o"
    form = {
        "form": "/v1/forms/f",
        "fields": [{"field": "/v1/forms/f/fields/x", "value": "Visitor-Lastname"}],
    }
    items = [
        {
            "offer": offer,
            "quantity": 1,
            "ticketSessions": [{"ticket": offer + "/tickets/t", "formData": form}],
        }
    ]
    booking = make_booking(State.PAID, now=utcnow(), items=items)
    assert store.create(booking, reason="test fixture")

    code, out, _ = run("status", booking.id, "--json")

    record = json.loads(out)
    assert code == 0 and record["id"] == booking.id and record["state"] == "paid"
    assert record["items"] == [{"offer": offer, "quantity": 1}]
    assert "customer" not in record and CUSTOMER["email"] not in out
    assert "Visitor-Lastname" not in out


def test_list_prints_a_table_and_json_with_a_cursor(store: BookingStore) -> None:
    ids = [put(store, State.AWAITING_PAYMENT).id for _ in range(3)]
    put(store, State.PAID)

    code, out, _ = run("list", "--state", "awaiting_payment")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["ID", "STATE", "EXTERNAL", "REF"]
    assert [row.split()[0] for row in rows] == ids

    code, out, _ = run("list", "--limit", "2", "--json")
    page = json.loads(out)
    assert code == 0 and [b["id"] for b in page["bookings"]] == ids[:2]
    code, out, _ = run("list", "--limit", "2", "--json", "--cursor", page["nextCursor"])
    assert [b["id"] for b in json.loads(out)["bookings"]] == ids[2:]

    code, out, _ = run("list", "--state", "completed")
    assert code == 0 and out.strip() == "no booking in state completed"


def test_timeline_lists_transitions(store: BookingStore) -> None:
    booking = put(store, State.AWAITING_PAYMENT)

    def cancel(b: Booking) -> Change:
        b.state = State.CANCELLED
        return Change(b, "operator test cancel")

    store.update(booking.id, cancel, task_id="task-42")

    code, out, _ = run("timeline", booking.id)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["AT", "FROM", "TO", "REASON", "TASK"]
    assert "awaiting_payment  test fixture" in out
    assert lines[2].split()[2:] == [
        "awaiting_payment",
        "cancelled",
        "operator",
        "test",
        "cancel",
        "task-42",
    ]

    code, out, _ = run("timeline", booking.id, "--json")
    entries = json.loads(out)
    assert [(e["from"], e["to"]) for e in entries] == [
        (None, "awaiting_payment"),
        ("awaiting_payment", "cancelled"),
    ]


def test_cancel_and_retry_act_or_refuse_with_a_reason(
    store: BookingStore, redis_client: redis.Redis
) -> None:
    unpaid = put(store, State.AWAITING_PAYMENT)
    paid = put(store, State.PAID)

    code, out, _ = run("cancel", unpaid.id)
    assert code == 0 and out.strip() == f"{unpaid.id} is cancelled"
    assert run("cancel", unpaid.id, "--json")[0] == 0  # idempotent
    cancelled = store.load(unpaid.id)
    assert cancelled is not None and cancelled.reason == "cancelled by an operator"

    code, _, err = run("cancel", paid.id)
    assert code == 1 and "cannot be cancelled" in err

    code, out, _ = run("retry", paid.id, "--json")
    assert code == 0 and json.loads(out) == {"id": paid.id, "enqueued": TaskName.CREATE_ORDER}
    assert redis_client.llen("payments") == 1  # urgent: the head of the payments queue

    code, _, err = run("retry", unpaid.id)
    assert code == 1 and "nothing to retry in state cancelled" in err


@pytest.mark.parametrize("command", ["status", "timeline", "retry", "cancel"])
def test_unknown_booking_id_exits_2_naming_it(store: BookingStore, command: str) -> None:
    code, out, err = run(command, "bk_doesnotexist")

    assert code == 2
    assert err.strip() == "error: no booking with id 'bk_doesnotexist'"
    assert out == ""


def _console(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_installed_console_script_answers_operators(store: BookingStore, redis_url: str) -> None:
    booking = put(store, State.AWAITING_PAYMENT)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "KORUS_BASE_URL": "http://127.0.0.1:9",
        "KORUS_TOKEN": "placeholder",
    }

    shown = _console(env, "status", booking.id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "awaiting_payment"

    missing = _console(env, "timeline", "bk_missing")
    assert missing.returncode == 2 and "no booking with id 'bk_missing'" in missing.stderr

    unset = {k: v for k, v in env.items() if k != "KORUS_BASE_URL"}
    broken = _console(unset, "status", booking.id)
    assert broken.returncode == 2
    assert "KORUS_BASE_URL: is required but not set" in broken.stderr
    assert broken.stderr.count("KORUS_BASE_URL") == 1 and broken.stdout == ""

    listed = _console(env, "--help")
    for command in ("demo", "sandbox", "web", "status", "list", "timeline", "retry", "cancel"):
        assert f"  {command} " in listed.stdout
