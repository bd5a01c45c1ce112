"""The sweeper as deployed: a real `celery beat` (RedBeat) sends booking.sweep every
second to a real worker, which cancels an unpaid hold shortly before the sandbox's hold
lapses; the merchant callback follows; beat check-ins reach Sentry Crons."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from celery.schedules import crontab
from redbeat import RedBeatSchedulerEntry

from korus_sandbox.admin import SandboxAdmin
from tests.ops.support import log_tail
from tests.support.booking import request_for, wait_for
from tests.support.deployment import WORKER_SETTINGS
from tests.support.receiver import HttpRecorder
from tests.support.waits import wait_until
from worker.app import app
from worker.booking.record import utcnow
from worker.booking.service import BookingService
from worker.booking.states import State
from worker.booking.task_names import TaskName
from worker.processes import Proc, beat_proc

HOLD_SECONDS = 8
CANCEL_MARGIN = 4


@pytest.fixture(scope="module")
def worker_settings(receiver: HttpRecorder) -> dict[str, str]:
    return {
        **WORKER_SETTINGS,
        "SWEEP_INTERVAL_SECONDS": "1",
        "CANCEL_MARGIN_SECONDS": str(CANCEL_MARGIN),
        "BEAT_LOCK_TIMEOUT_SECONDS": "5",
        "CALLBACK_URL": receiver.url,
        "SENTRY_DSN": receiver.sentry_dsn,
        "SENTRY_ENVIRONMENT": "ops-test",
    }


@pytest.fixture(scope="module")
def beat(worker: Proc, deployment_env: dict[str, str],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    from worker.celeryconfig import SWEEP_MONITOR_ENTRY  # reads settings: not at collection

    # As if the minutely monitor entry last ran two minutes ago: due at once (a fresh
    # entry would wait for the next minute boundary).
    entry = RedBeatSchedulerEntry(SWEEP_MONITOR_ENTRY, TaskName.SWEEP, crontab(), app=app)
    entry.save()
    entry.reschedule(last_run_at=utcnow() - timedelta(minutes=2))
    log = Path(tmp_path_factory.mktemp("beat")) / "beat.log"
    proc = beat_proc(deployment_env, log=log).start()
    yield proc
    proc.stop()


@pytest.fixture
def short_holds(admin: SandboxAdmin) -> Iterator[None]:
    admin.configure(hold_seconds=HOLD_SECONDS)
    yield
    admin.configure(hold_seconds=900)


def test_beat_sweep_cancels_an_unpaid_hold_before_expiry_and_notifies_the_merchant(
    service: BookingService, catalog: dict[str, Any], beat: Proc, receiver: HttpRecorder,
    short_holds: None,
) -> None:
    started = service.start_booking(request_for(catalog, "Day Pass", external_reference="SW-1"))
    held = wait_for(service, started.booking.id, State.AWAITING_PAYMENT, timeout=20)
    expires = held.earliest_expires_at
    assert expires is not None

    try:
        done = wait_for(service, held.id, State.CANCELLED, State.EXPIRED, timeout=HOLD_SECONDS + 10)
    except AssertionError:
        raise AssertionError(log_tail(beat.log_path)) from None

    assert done.state == State.CANCELLED, service.timeline(held.id)
    entry = next(e for e in service.timeline(held.id) if e["to"] == "cancelled")
    assert entry["task_id"] == "sweep"
    assert entry["reason"] == "unpaid hold cancelled shortly before it lapses"
    assert datetime.fromisoformat(entry["at"]) < expires  # before the hold lapsed

    def cancelled_callback() -> list[dict[str, Any]]:
        return [c for c in receiver.callbacks(held.id) if c["type"] == "booking.cancelled"]

    callback = wait_until(cancelled_callback, 15, "the booking.cancelled callback")[0]
    assert callback["data"]["state"] == "cancelled"


def test_beat_sends_sentry_cron_check_ins_for_the_sweep_monitor(
    beat: Proc, receiver: HttpRecorder
) -> None:
    """A sub-minute sweep cannot be a Sentry Crons monitor; the minutely entry is. Beat
    sends `in_progress` when it sends the task, the worker `ok` when it succeeded."""

    def statuses() -> set[str] | None:
        found = {c["status"] for c in receiver.check_ins()
                 if c["monitor_slug"] == "booking.sweep.minutely"}
        return found if {"in_progress", "ok"} <= found else None

    wait_until(statuses, 20, "in_progress and ok check-ins of booking.sweep.minutely")
    check_in = next(c for c in receiver.check_ins() if c["status"] == "ok")
    assert check_in["environment"] == "ops-test"
    assert check_in["monitor_config"]["schedule"] == {"type": "crontab", "value": "* * * * *"}
    # The one-second entry is excluded instead of warning on every tick.
    assert all(c["monitor_slug"] != "booking.sweep" for c in receiver.check_ins())
