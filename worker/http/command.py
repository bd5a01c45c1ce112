"""`booking-worker web`: the HTTP front on the production serving stack.

It runs gunicorn with the very settings of the Procfile's `web` process
(worker.http.gunicorn_config: gevent worker, header and body deadlines, size caps), only
bound where the options say. The socket is bound here first, so `--port 0` works: the
first line printed is the URL (flushed), then this process becomes the gunicorn master
(exec) and serves on that socket.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import click

# By path, like deploy/gunicorn.conf.py (see worker/http/gunicorn_config.py for why).
CONFIG = str(Path(__file__).with_name("gunicorn_config.py"))
APP = "worker.http.wsgi:application"


def gunicorn_argv(fd: int, workers: int | None) -> list[str]:
    argv = [sys.executable, "-m", "gunicorn", "-c", CONFIG, "--bind", f"fd://{fd}"]
    if workers is not None:
        argv += ["--workers", str(workers)]
    return [*argv, APP]


def serve(host: str, port: int, workers: int | None = None) -> None:
    from worker.settings import load_settings

    load_settings()  # a missing variable stops here, naming it, before anything is bound
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    bound_host, bound_port = listener.getsockname()[:2]
    shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
    click.echo(f"http://{shown}:{bound_port}", nl=True)
    sys.stdout.flush()
    argv = gunicorn_argv(listener.fileno(), workers)
    os.execv(argv[0], argv)  # noqa: S606 - our own interpreter and arguments


# Every option shows its default in --help (as under `booking-worker`, whose group says so).
@click.command("web", context_settings={"show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", default=8000, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes (default: WEB_CONCURRENCY, else 2-4 by CPU count).")
def web(host: str, port: int, workers: int | None) -> None:
    """Serve the merchant API and the payment webhooks (gunicorn + gevent, as in production)."""
    serve(host, port, workers)
