"""The retry policy's bounded count ends in a visible alert, with the booking intact."""

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
    return {**WORKER_SETTINGS, "TASK_MAX_RETRIES": "1", "RETRY_BACKOFF_CAP_SECONDS": "1"}


def test_exhausted_retries_alert_and_leave_the_booking_for_the_sweeper(
    service: BookingService, admin: SandboxAdmin, catalog: dict[str, Any], worker: Proc
) -> None:
    admin.set_fault("POST /v1/booking/reservations/_bulk", next=["error", "error", "error"])
    booking = service.start_booking(request_for(catalog, "Day Pass")).booking

    assert worker.log_path is not None
    deadline = time.monotonic() + 30
    log = ""
    while time.monotonic() < deadline and "retries_exhausted" not in log:
        time.sleep(0.2)
        log = worker.log_path.read_text()

    assert f"ALERT retries_exhausted booking={booking.id}" in log
    assert admin.calls()["POST /v1/booking/reservations/_bulk"] == 2  # first try + 1 retry
    assert wait_for(service, booking.id, State.RESERVING).state == State.RESERVING
