"""The Celery app: queues, serializer, acknowledgement and time limits. Nothing else.

Configuration is read from `worker.celeryconfig` lazily (on first use of `app.conf`), so
importing this module needs no environment and opens no connection. The signal hooks of
`worker.observability.wiring` (logging, Sentry) only run when a worker or beat starts.
"""

from __future__ import annotations

from celery import Celery

from worker import probes
from worker.observability import wiring

app = Celery("booking-worker")
app.config_from_object("worker.celeryconfig")
wiring.install()
probes.install()  # /healthz and /readyz of workers and beat when HEALTH_PORT is set
