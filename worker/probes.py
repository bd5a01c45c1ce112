"""`GET /healthz` and `GET /readyz` for the processes without an HTTP front (Celery
workers and beat), so an orchestrator probes them like `web`.

Off unless HEALTH_PORT is set. Then the worker's main process (on `worker_ready`, once it
consumes) or beat (on `beat_init`) serves on 0.0.0.0:HEALTH_PORT from a daemon thread:

- /healthz: 200 while the process runs and answers (a liveness probe restarts a
  process that stopped answering); touches no backend, so a Redis outage never makes an
  orchestrator kill every worker at once;
- /readyz: 200 when the state store answers PING and a broker connection opens, each
  within 2 s on a connection of its own; else 503 naming the failing backend.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("booking.probes")

PROBE_TIMEOUT_SECONDS = 2.0

Check = tuple[str, Callable[[], None]]


def store_check(redis_url: str) -> Callable[[], None]:
    def check() -> None:
        from worker.redis_connect import connect

        client = connect(
            redis_url,
            socket_timeout=PROBE_TIMEOUT_SECONDS,
            socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
        )
        try:
            client.ping()
        finally:
            client.close()

    return check


def broker_check(app: Celery) -> Callable[[], None]:
    """Open (and close) a broker connection; kombu's Redis transport PINGs on connect."""

    def check() -> None:
        with app.connection_for_write(connect_timeout=PROBE_TIMEOUT_SECONDS) as connection:
            connection.ensure_connection(max_retries=0, timeout=PROBE_TIMEOUT_SECONDS)

    return check


def run_checks(checks: Sequence[Check], logger: logging.Logger = log) -> dict[str, str]:
    """Each check's outcome by name: "ok", or "error: <exception type>" (logged to `logger`)."""
    results: dict[str, str] = {}
    for name, check in checks:
        try:
            check()
            results[name] = "ok"
        except Exception as error:  # any failure means "not ready"
            logger.warning("readiness check %s failed: %s", name, type(error).__name__)
            results[name] = f"error: {type(error).__name__}"
    return results


def readiness(checks: list[Check]) -> tuple[int, dict[str, Any]]:
    results = run_checks(checks)
    ready = all(result == "ok" for result in results.values())
    return (200 if ready else 503), {"status": "ready" if ready else "not ready",
                                     "checks": results}


def serve(port: int, checks: list[Check], host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104 - probes come from the orchestrator
    """Start the probe server on a daemon thread; returns it (tests shut it down)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                status, body = 200, {"status": "ok"}
            elif self.path == "/readyz":
                status, body = readiness(checks)
            else:
                status, body = 404, {"status": "not found"}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    log.info("probes on port %d: /healthz, /readyz", port)
    return server


def _start(sender: Any = None, **_: Any) -> None:
    from worker.app import app
    from worker.settings import load_settings

    settings = load_settings()
    if settings.health_port is None:
        return
    serve(
        settings.health_port,
        [("redis", store_check(settings.redis_url)), ("broker", broker_check(app))],
    )


def install() -> None:
    """Serve the probes in worker and beat processes when HEALTH_PORT is set."""
    from celery import signals

    signals.worker_ready.connect(_start, weak=False)
    signals.beat_init.connect(_start, weak=False)
