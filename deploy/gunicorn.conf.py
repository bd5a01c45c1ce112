"""Gunicorn settings of the HTTP front.

    gunicorn -c deploy/gunicorn.conf.py worker.http.wsgi:application

Environment: PORT (default 8000, bound on all interfaces), WEB_CONCURRENCY (worker
processes, default 2-4 by CPU count), WEB_THREADS (threads per worker, default 8).
Command-line options override this file (the tests pass `--bind 127.0.0.1:<port>`).

Why these values:
- gthread: a request mostly waits on Redis or the broker (and `Prefer: wait` holds a
  thread up to 10 s while it polls), so threads, not processes, give the concurrency.
- timeout 30 s: above the longest handler (10 s wait + a 5 s Redis timeout), so only a
  wedged worker is killed.
- preload_app off: each worker builds its own app after the fork, so no Redis or broker
  connection is ever shared between processes.
- no access log: requests are counted by route and status in /metrics; errors are logged
  by the app in its own format (worker.observability).
- prometheus-client multiprocess mode: counters live in files under
  PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory unless set), so /metrics on any
  worker reports the sum over all of them.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any

bind = [f"0.0.0.0:{int(os.environ.get('PORT', '8000'))}"]
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, max(2, os.cpu_count() or 1))))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 5
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


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges must not be reported any more."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
