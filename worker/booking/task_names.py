"""The names of the booking tasks: the one place they are spelled.

They are a public contract (they are on the wire: in every task message, in Flower, in
the logs and in Sentry), so a value here never changes. Everything that names a task
uses a member of `TaskName`: the task decorators (tasks/), the routes and the beat
schedule (worker.celeryconfig), the enqueuer (worker.enqueue), the state -> task map
(worker.booking.states.DRIVER) and the webhook's one-script ingress. A `StrEnum`
member is its value as a string, so Celery, kombu's JSON and Redis see the plain name.

Merchant callback event types ("booking.completed", ...: worker.booking.effects) and
logger names ("booking.tasks", ...) look alike but are neither task names nor here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class TaskName(StrEnum):
    RESERVE = "booking.reserve"  # tasks/reserve.py, queue bookings
    PAYMENT_SUCCEEDED = "booking.payment_succeeded"  # tasks/payment.py, queue payments
    CREATE_ORDER = "booking.create_order"  # tasks/ordering.py, queue payments
    FETCH_DOCUMENTS = "booking.fetch_documents"  # tasks/documents.py, queue documents
    NOTIFY = "booking.notify"  # tasks/callbacks.py, queue callbacks
    SWEEP = "booking.sweep"  # tasks/sweep.py, queue maintenance (the beat's)


# The tasks that drive a booking out of a state (states.DRIVER's values): the ones the
# sweeper and `booking-worker retry` send again.
DriverTask = Literal[TaskName.RESERVE, TaskName.CREATE_ORDER, TaskName.FETCH_DOCUMENTS]
