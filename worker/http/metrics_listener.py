"""`/metrics` on a listener of its own (METRICS_PORT), never on the public port.

    python -m worker.http.metrics_listener      (started by the gunicorn master)

The gunicorn master starts it as a child process (`when_ready` in
worker.http.gunicorn_config; a process, so the master imports nothing of the app before
the gevent workers fork and patch) and stops it on exit; it also exits when its parent
goes away. It sums the files every worker writes (prometheus-client multiprocess mode,
the same PROMETHEUS_MULTIPROC_DIR) and adds the bookings-by-state counts read from Redis.
Bind it to a private interface (METRICS_HOST, default 127.0.0.1) or firewall it: it has no
authentication of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger("booking.http")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def metrics_wsgi(exposition: Callable[[], bytes], content_type: str) -> Callable[..., Any]:
    """A WSGI app answering GET /metrics with `exposition()`, 404 for anything else."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") != "GET":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        body = exposition()
        start_response("200 OK", [("Content-Type", content_type),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


def serve_metrics(host: str, port: int, exposition: Callable[[], bytes],
                  content_type: str) -> WSGIServer:
    """Serve `exposition` on host:port from a daemon thread; returns the server."""
    server = make_server(host, port, metrics_wsgi(exposition, content_type),
                         server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server


def main() -> None:
    """Serve until the parent process (the gunicorn master) is gone."""
    import os
    import time

    from worker.observability.logs import configure_logging
    from worker.settings import load_settings

    configure_logging(load_settings())
    parent = os.getppid()
    server = start_from_settings()
    if server is None:
        return
    try:
        while os.getppid() == parent:
            time.sleep(1.0)
    finally:
        server.shutdown()


def start_from_settings(logger: Any = None) -> WSGIServer | None:
    """The metrics listener of METRICS_PORT (None when unset)."""
    import redis
    from prometheus_client import CONTENT_TYPE_LATEST

    from worker.http.metrics import Metrics
    from worker.settings import load_settings

    settings = load_settings()
    if settings.metrics_port is None:
        return None
    # A client of its own (not worker.runtime's): the master forks the workers after
    # this, and they must not inherit a pool.
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True,
                                  socket_timeout=5, socket_connect_timeout=5)
    metrics = Metrics(client)
    server = serve_metrics(settings.metrics_host, settings.metrics_port, metrics.exposition,
                           CONTENT_TYPE_LATEST)
    (logger or log).info("metrics on http://%s:%d/metrics", *server.server_address[:2])
    return server


if __name__ == "__main__":
    main()
