"""Gunicorn settings of the HTTP front (Procfile `web`): worker/http/gunicorn_config.py.

    gunicorn -c deploy/gunicorn.conf.py worker.http.wsgi:application

The settings live in the package so `booking-worker web` serves with exactly the same
ones; see that file for the values and the reasons. It is executed by path (not imported
as `worker.http...`) so the gunicorn master imports nothing of the app before the gevent
workers fork.
"""

from pathlib import Path

_SETTINGS = Path(__file__).resolve().parents[1] / "worker" / "http" / "gunicorn_config.py"
exec(compile(_SETTINGS.read_text(), str(_SETTINGS), "exec"))  # noqa: S102
