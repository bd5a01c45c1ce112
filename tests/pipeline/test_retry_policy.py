"""The retry policy's budget is the one settings give (not Celery's default of 3) and
ends in a visible alert, with the booking intact and parked for the sweeper."""

from __future__ import annotations

import time
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from tests.support.booking import request_for, wait_for
from tests.support.deployment import WORKER_SETTINGS
from worker.booking.service import BookingService
from worker.booking.states import State
from worker.processes import Proc


@pytest.fixture(scope="module")
def worker_settings() -> dict[str, str]:
    # Above Celery's default of 3: the old policy (`retry(max_retries=None)`) stopped at 4
    # calls whatever TASK_MAX_RETRIES said, and never alerted.
    return {**WORKER_SETTINGS, "TASK_MAX_RETRIES": "5", "RETRY_BACKOFF_CAP_SECONDS": "1"}


def test_exhausted_retries_alert_and_leave_the_booking_for_the_sweeper(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any], worker: Proc
) -> None:
    admin.set_fault("POST /v1/booking/reservations/_bulk", error_rate=1.0)
    booking = service.start_booking(request_for(catalog, "Day Pass")).booking

    assert worker.log_path is not None
    deadline = time.monotonic() + 30
    log = ""
    while time.monotonic() < deadline and "retries_exhausted" not in log:
        time.sleep(0.2)
        log = worker.log_path.read_text()

    assert f"ALERT retries_exhausted booking={booking.id}" in log
    assert admin.calls()["POST /v1/booking/reservations/_bulk"] == 6  # first try + 5 retries
    parked = wait_for(service, booking.id, State.RESERVING)
    assert "retries_exhausted" in parked.alerts and parked.retry_at is not None
    time.sleep(2)  # nothing else is sent: the sweeper tries again a stuck period later
    assert admin.calls()["POST /v1/booking/reservations/_bulk"] == 6
