"""The Celery app: queues, serializer, acknowledgement and time limits. Nothing else.

Configuration is read from `worker.celeryconfig` lazily (on first use of `app.conf`), so
importing this module needs no environment and opens no connection.
"""

from __future__ import annotations

from celery import Celery

app = Celery("booking-worker")
app.config_from_object("worker.celeryconfig")
