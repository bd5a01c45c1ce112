"""Workers and beat answer /healthz and /readyz on HEALTH_PORT (the Kubernetes probes of
deploy/k8s), and /readyz names a backend that does not answer."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.ops.support import log_tail
from tests.support.deployment import WORKER_SETTINGS
from tests.support.waits import wait_until
from worker.app import app
from worker.probes import broker_check, serve, store_check
from worker.processes import Proc, beat_proc, free_port


@functools.cache
def probe_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def worker_settings() -> dict[str, str]:
    return {**WORKER_SETTINGS, "HEALTH_PORT": str(probe_port())}


def get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=5)
    except requests.RequestException:
        return None


def test_a_worker_answers_its_probes_once_it_consumes(worker: Proc) -> None:
    base = f"http://127.0.0.1:{probe_port()}"
    live = wait_until(lambda: get(f"{base}/healthz"), 60,
                      f"worker probes\n{log_tail(worker.log_path)}", interval=0.3)

    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"redis": "ok", "broker": "ok"}}
    assert requests.get(f"{base}/other", timeout=5).status_code == 404


@pytest.fixture
def beat(deployment_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Proc, int]]:
    port = free_port()
    proc = beat_proc({**deployment_env, "HEALTH_PORT": str(port)},
                     log=tmp_path / "beat.log").start()
    yield proc, port
    proc.stop()


def test_beat_answers_its_probes(beat: tuple[Proc, int]) -> None:
    proc, port = beat
    live = wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz"), 60,
                      f"beat probes\n{log_tail(proc.log_path)}", interval=0.3)

    assert live.status_code == 200
    assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200


def test_readyz_is_503_naming_a_backend_that_does_not_answer() -> None:
    port = free_port()
    server = serve(port, [("redis", store_check("redis://127.0.0.1:1/0")),
                          ("broker", broker_check(app))], host="127.0.0.1")
    try:
        live = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    finally:
        server.shutdown()
        server.server_close()

    assert live.status_code == 200  # liveness never depends on a backend
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"redis": "error: ConnectionError", "broker": "ok"}
