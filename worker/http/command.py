"""`booking-worker web`: the HTTP front on a small threaded WSGI server, for development.

Production runs gunicorn (deploy/gunicorn.conf.py). This server is the standard library's
wsgiref with one thread per connection: fine on a laptop, not behind a load balancer.
The first line printed is the URL (flushed), so a parent process can read the port
chosen with `--port 0`.
"""

from __future__ import annotations

import logging
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import click


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    """Access lines go to the `booking.http.access` logger at DEBUG, not to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger("booking.http.access").debug(format, *args)


def serve(host: str, port: int) -> None:
    from worker.http.app import create_app
    from worker.observability.logs import configure_logging
    from worker.observability.sentry import init_sentry
    from worker.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    init_sentry(settings, "web")
    app = create_app(settings=settings)
    server = make_server(
        host, port, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler
    )
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"http://{bound_host!s}:{bound_port}", nl=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free port).",
)
def web(host: str, port: int) -> None:
    """Serve the merchant API and the payment webhooks (development server)."""
    serve(host, port)
