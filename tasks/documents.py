"""booking.fetch_documents: beneficiaries, then document URLs (worker.booking.documents)."""

from __future__ import annotations

from celery import Task

from tasks.policy import MESSAGE_RETRY_CEILING, run_step
from worker.app import app
from worker.booking.documents import fetch_documents as documents_step
from worker.booking.task_names import TaskName


@app.task(
    name=TaskName.FETCH_DOCUMENTS, bind=True, acks_late=True, max_retries=MESSAGE_RETRY_CEILING
)
def fetch_documents(self: Task, booking_id: str, refresh: bool = False) -> None:
    """Fetch or refresh document URLs; idempotent, waits without holding a worker."""
    run_step(self, documents_step, booking_id, refresh=refresh)
