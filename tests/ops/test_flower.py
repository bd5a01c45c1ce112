"""Flower watches the real workers: `celery -A worker flower` with basic auth, against the
test Redis, shows our booking tasks; without credentials its API answers 401."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.ops.support import log_tail
from tests.support.booking import request_for, wait_for
from tests.support.waits import wait_until
from worker.booking.service import BookingService
from worker.booking.states import State
from worker.booking.task_names import TaskName
from worker.processes import Proc, free_port

AUTH = ("operator", "flower-pass")
TASK_NAMES = frozenset(TaskName)


@pytest.fixture(scope="module")
def flower(worker: Proc, deployment_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = Path(tmp_path_factory.mktemp("flower")) / "flower.log"
    argv = [sys.executable, "-m", "celery", "-A", "worker", "flower", "--address=127.0.0.1",
            f"--port={port}", "--inspect_timeout=3000", f"--basic-auth={AUTH[0]}:{AUTH[1]}"]
    proc = Proc("flower", argv, deployment_env, log).start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/api/workers", auth=AUTH, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, 30, f"Flower on {url}\n{log_tail(log)}", interval=0.3)
        yield url
    finally:
        proc.stop()


def test_flower_lists_booking_tasks_from_the_workers_events(
    flower: str, service: BookingService, catalog: dict[str, Any]
) -> None:
    booking = service.start_booking(request_for(catalog, "Day Pass", external_reference="FL-1"))
    wait_for(service, booking.booking.id, State.AWAITING_PAYMENT, timeout=20)

    def reserve_seen() -> list[dict[str, Any]]:
        tasks = requests.get(f"{flower}/api/tasks", params={"taskname": TaskName.RESERVE},
                             auth=AUTH, timeout=5).json()
        return [t for t in tasks.values()
                if t["state"] == "SUCCESS" and booking.booking.id in (t.get("args") or "")]

    task = wait_until(reserve_seen, 20, f"{TaskName.RESERVE} in Flower")[0]
    assert task["name"] == TaskName.RESERVE
    # Task types seen in events so far: the reservation and its booking.reserved callback.
    types = requests.get(f"{flower}/api/task/types", auth=AUTH, timeout=10).json()
    assert {TaskName.RESERVE, TaskName.NOTIFY} <= set(types["task-types"])
    # What the workers have registered (asked over the broker): every stable task name.
    def registered() -> set[str]:
        workers = requests.get(f"{flower}/api/workers", params={"refresh": 1}, auth=AUTH,
                               timeout=15).json()
        names = {name for info in workers.values() for name in info.get("registered", [])}
        return names if TASK_NAMES <= names else set()

    wait_until(registered, 20, "the workers' registered tasks in Flower", interval=1)


@pytest.mark.parametrize("path", ["/api/tasks", "/api/workers", "/"])
def test_flower_refuses_requests_without_credentials(flower: str, path: str) -> None:
    assert requests.get(f"{flower}{path}", timeout=5).status_code == 401
    wrong = requests.get(f"{flower}{path}", auth=(AUTH[0], "wrong"), timeout=5)
    assert wrong.status_code == 401
