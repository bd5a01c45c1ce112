"""Gunicorn settings of the HTTP front (Procfile `web`): worker/http/gunicorn_config.py.

    gunicorn -c deploy/gunicorn.conf.py worker.http.wsgi:application

The settings live in the package so `booking-worker web` serves with exactly the same
ones; see that module for the values and the reasons.
"""

from worker.http.gunicorn_config import *  # noqa: F403
