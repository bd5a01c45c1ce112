"""Put booking task messages on the broker by task name (no task module imported here)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from worker.booking.task_names import TaskName
from worker.queues import priorities


class CeleryEnqueuer:
    """The `Enqueuer` of worker.booking.effects over Celery's `send_task`.

    Routing (queues) comes from the app's `task_routes`; `send_task` returns once the
    broker accepted the message. Every message says `ignore_result` (there is no result
    backend): left out, its header is whatever this Celery version's `send_task` puts
    there (False in 5.6, None in 5.7), and the webhook ingress builds the same message.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app

    def _send(self, name: TaskName, args: list[Any], **options: Any) -> None:
        sent = {k: v for k, v in options.items() if v is not None}
        self.app.send_task(name, args=args, ignore_result=True, **sent)

    def reserve(self, booking_id: str) -> None:
        self._send(TaskName.RESERVE, [booking_id])

    def payment_succeeded(self, booking_id: str, event_id: str) -> None:
        self._send(TaskName.PAYMENT_SUCCEEDED, [booking_id, event_id])

    def create_order(self, booking_id: str, *, urgent: bool = False, countdown: float = 0) -> None:
        # The head of the payments queue: 0 on Redis, the highest on RabbitMQ.
        self._send(
            TaskName.CREATE_ORDER,
            [booking_id],
            priority=priorities(self.app.conf.broker_url).urgent if urgent else None,
            countdown=countdown or None,
        )

    def fetch_documents(
        self, booking_id: str, *, countdown: float = 0, refresh: bool = False
    ) -> None:
        self._send(
            TaskName.FETCH_DOCUMENTS,
            [booking_id],
            kwargs={"refresh": refresh} if refresh else None,
            countdown=countdown or None,
        )

    def notify(self, booking_id: str, event_type: str) -> None:
        self._send(TaskName.NOTIFY, [booking_id, event_type])
