"""booking-worker: reserve Korus tickets, await payment, order exactly once, fetch documents.

`celery -A worker ...` finds the Celery app here.
"""

from worker.app import app

__all__ = ["app"]
