"""Gunicorn settings of the HTTP front: the one serving stack of production and dev.

    gunicorn -c deploy/gunicorn.conf.py worker.http.wsgi:application     (Procfile `web`)
    booking-worker web                                                   (same settings)

deploy/gunicorn.conf.py executes this file, so the Procfile line stays the single command
of the web process. Both load it by path, never as `worker.http...`: importing the
`worker` package would import Celery, kombu, redis and urllib3 into the gunicorn master,
and the gevent workers it forks would inherit them unpatched (gevent's MonkeyPatchWarning;
blocking TLS in Sentry's transport). This file imports only the standard library.

Environment: PORT (default 8000, bound on all interfaces), WEB_CONCURRENCY (worker
processes, default 2-4 by CPU count), WEB_CONNECTIONS (connections per worker, default
1000), METRICS_PORT (see `when_ready`). Command-line options override this file (the
tests pass `--bind 127.0.0.1:<port>`).

Why these values (figures in deploy/README.md):
- gevent worker: one greenlet per connection, so a connection that trickles its body or
  sits idle costs memory, not a thread. With gthread (8 threads), 8 slow sockets took a
  worker off the air; with gevent, 256 slow bodies plus 256 idle keep-alives leave a
  signed webhook answering in milliseconds.
- keepalive 5 s is also the header deadline: gunicorn's async workers read the request
  line and headers of every request, the first included, under a `gevent.Timeout` of
  `keepalive` seconds; a client that has not sent its headers by then is disconnected.
- header size caps: a request line of 4 KiB, 50 header fields of 8 KiB each at most
  (gunicorn answers 400 / 431 beyond). Providers send about 15 headers.
- the body has its own total deadline, enforced by the app (worker.http.body).
- timeout 30 s: above the longest handler (10 s `Prefer: wait` + a 5 s Redis timeout), so
  only a wedged worker is killed.
- preload_app off: each worker builds its own app after the fork (and after gevent
  patched the standard library), so no Redis or broker connection is ever shared.
- no access log: requests are counted by route and status in /metrics; errors are logged
  by the app in its own format (worker.observability).
- prometheus-client multiprocess mode: counters live in files under
  PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory unless set), so a scrape sums
  every worker.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

bind = [f"0.0.0.0:{int(os.environ.get('PORT', '8000'))}"]
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, max(2, os.cpu_count() or 1))))
worker_class = "gevent"
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "1000"))
timeout = 30
graceful_timeout = 20
keepalive = 5
limit_request_line = 4096
limit_request_fields = 50
limit_request_field_size = 8190
preload_app = False
accesslog = None
errorlog = "-"
loglevel = "info"
proc_name = "booking-web"
# gunicorn >= 25 opens a control socket at one per-user path: two instances on a host
# (tests, benchmarks, a second deployment) would fight over it. Older versions ignore this.
control_socket_disable = True
# Heartbeat files on tmpfs: a worker blocked on a slow disk is not killed by mistake
# (gunicorn creates them with mkstemp, so a shared directory is safe).
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None

# Set before any worker imports prometheus_client (it decides its mode at import).
_own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="booking-web-metrics-")
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server: Any) -> None:
    """Start from empty metric files (a directory reused across restarts keeps old ones)."""
    os.makedirs(_metrics_dir, exist_ok=True)
    for path in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.remove(path)


_metrics_listener: list[subprocess.Popen[bytes]] = []


def when_ready(server: Any) -> None:
    """With METRICS_PORT set, /metrics is served on its own listener by a child process
    (worker.http.metrics_listener: the sum of every worker's files); the public port
    answers 404 for it."""
    if os.environ.get("METRICS_PORT"):
        _metrics_listener.append(
            subprocess.Popen([sys.executable, "-m", "worker.http.metrics_listener"])
        )
        server.log.info("metrics listener on port %s", os.environ["METRICS_PORT"])


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges must not be reported any more."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    for child in _metrics_listener:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
