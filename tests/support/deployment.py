"""Fixtures of a real deployment per test module: the sandbox, a Celery worker, real Redis
(and the web front beside them: `web_and_worker`).

Registered for every test by tests/conftest.py (`pytest_plugins`). A module that needs
other worker settings overrides the `worker_settings` fixture.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.server import SandboxConfig, start_sandbox
from tests.http.helpers import WebServer, web_env
from tests.support.backends import Backends
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.service import BookingService
from worker.booking.store import BookingStore
from worker.enqueue import CeleryEnqueuer
from worker.processes import Proc, service_env, worker_proc
from worker.redis_connect import connect

# Short timeouts so faults resolve in seconds: the sandbox's fault timeouts (2 s) are
# longer than the worker's read timeout (1 s), which then sees a real timeout.
WORKER_SETTINGS = {
    "KORUS_READ_TIMEOUT": "1",
    "KORUS_CONNECT_TIMEOUT": "1",
    "RETRY_BACKOFF_CAP_SECONDS": "2",
    "VISIBILITY_TIMEOUT_SECONDS": "30",
    "STUCK_AFTER_SECONDS": "60",
    # Merchant callbacks go to loopback receivers over plain HTTP in these tests.
    "CALLBACK_ALLOW_HTTP": "true",
    "CALLBACK_ALLOWED_NETWORKS": "127.0.0.0/8",
}


@pytest.fixture(scope="module")
def sandbox_shapes() -> str:
    """The sandbox's answer shapes: SANDBOX_SHAPES (documented by default). tests/pipeline
    overrides this fixture to run every pipeline module in both shape modes."""
    return os.environ.get("SANDBOX_SHAPES", "documented")


@pytest.fixture(scope="module")
def sandbox(sandbox_shapes: str) -> Iterator[Any]:
    config = SandboxConfig(port=0, documents_delay_seconds=2.0, shapes=sandbox_shapes)
    with start_sandbox(config) as running:
        yield running


@pytest.fixture(scope="module")
def admin(sandbox: Any) -> SandboxAdmin:
    return SandboxAdmin(sandbox.url)


@pytest.fixture(scope="module")
def catalog(admin: SandboxAdmin) -> dict[str, Any]:
    return admin.catalog()


@pytest.fixture(scope="module")
def worker_settings() -> dict[str, str]:
    return dict(WORKER_SETTINGS)


@pytest.fixture(scope="module")
def backends(redis_url: str) -> Backends:
    """Where state and messages live: the test Redis for both unless a module overrides
    this fixture (tests/pipeline runs on RabbitMQ and on a Redis Cluster too)."""
    return Backends("redis", redis_url)


@pytest.fixture(scope="module")
def deployment_env(
    backends: Backends, sandbox: Any, worker_settings: dict[str, str]
) -> dict[str, str]:
    # Flushed once, before the worker starts: flushing under a running worker would drop
    # its queued and unacknowledged messages.
    backends.flush()
    extra = {"BROKER_URL": backends.broker_url} if backends.broker_url else {}
    return service_env(backends.redis_url, sandbox.url, **extra, **worker_settings)


@pytest.fixture(scope="module")
def worker(
    deployment_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    log = Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    proc = worker_proc(deployment_env, concurrency=4, log=log).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def web_and_worker(
    redis_url: str,
    deployment_env: dict[str, str],
    worker: Proc,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebServer]:
    """gunicorn on the same Redis and sandbox as the worker (started after its flush)."""
    log = Path(tmp_path_factory.mktemp("web")) / "gunicorn.log"
    server = WebServer(web_env(redis_url, deployment_env), log).start()
    yield server
    server.stop()


@pytest.fixture
def service(backends: Backends, worker: Proc, admin: SandboxAdmin) -> Iterator[BookingService]:
    admin.reset()
    client = connect(backends.redis_url, decode_responses=True)
    store = BookingStore(client, retention_seconds=3600, deadline_policy=DeadlinePolicy())
    yield BookingService(
        store, CeleryEnqueuer(backends.app()), event_ttl_seconds=3600, policy="all_or_nothing"
    )
    admin.clear_faults()
    client.close()
