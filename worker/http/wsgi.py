"""The WSGI entry point for gunicorn: `worker.http.wsgi:application`.

    gunicorn -c deploy/gunicorn.conf.py worker.http.wsgi:application

Importing this module reads the settings (a missing variable stops the worker with a
message naming it), sets up logs and Sentry for the `web` role, and builds the app; it
opens no connection to Redis or the broker.
"""

from __future__ import annotations

from worker.http.app import create_app
from worker.observability.logs import configure_logging
from worker.observability.sentry import init_sentry
from worker.settings import load_settings

settings = load_settings()
configure_logging(settings)
init_sentry(settings, "web")
application = create_app(settings=settings)
