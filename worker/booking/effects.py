"""What happens after a transition: the next task, merchant callbacks, alerts.

Follow-ups are derived from the record, not remembered by the caller: a task that runs
again after a crash (between its compare-and-set and its enqueue) sends them again, and
the receiving tasks are idempotent, so nothing is lost and nothing is done twice. The
merchant callback of a state entered is also recorded as expected by the write itself
(`BookingStore`, CALLBACK_ON_ENTRY): if its notify message is lost, the sweeper sends it.
"""

from __future__ import annotations

from typing import Protocol, assert_never

from worker.alerts import alert
from worker.booking.record import Booking
from worker.booking.states import DRIVER, State
from worker.booking.task_names import DriverTask, TaskName

# State entered -> merchant callback event type (design.md "Merchant callbacks").
CALLBACK_ON_ENTRY: dict[State, str] = {
    State.AWAITING_PAYMENT: "booking.reserved",
    State.RESERVATION_FAILED: "booking.reservation_failed",
    State.COMPLETED: "booking.completed",
    State.CANCELLED: "booking.cancelled",
    State.EXPIRED: "booking.expired",
    State.REFUND_REQUIRED: "booking.refund_required",
}


class Enqueuer(Protocol):
    """Puts task messages on the broker. Implemented over Celery in worker.enqueue."""

    def reserve(self, booking_id: str) -> None: ...

    def payment_succeeded(self, booking_id: str, event_id: str) -> None: ...

    def create_order(
        self, booking_id: str, *, urgent: bool = False, countdown: float = 0
    ) -> None: ...

    def fetch_documents(
        self, booking_id: str, *, countdown: float = 0, refresh: bool = False
    ) -> None: ...

    def notify(self, booking_id: str, event_type: str) -> None: ...


def send_driver(
    booking_id: str, state: State, enqueue: Enqueuer, *, urgent: bool = False
) -> DriverTask:
    """Enqueue the task of DRIVER[state]; returns its name (KeyError for other states).
    `urgent` puts an order at the head of its queue (the others have no urgency)."""
    task = DRIVER[state]
    match task:
        case TaskName.RESERVE:
            enqueue.reserve(booking_id)
        case TaskName.CREATE_ORDER:
            enqueue.create_order(booking_id, urgent=urgent)
        case TaskName.FETCH_DOCUMENTS:
            enqueue.fetch_documents(booking_id)
        case _:
            assert_never(task)
    return task


def drive(booking: Booking, enqueue: Enqueuer) -> None:
    """Enqueue the task that moves a booking out of a state it has just reached.

    Sent again by every step that sees these states (a crash between a compare-and-set
    and its enqueue loses nothing): create_order is guarded by its claim and
    fetch_documents by its own. A reservation is enqueued on entry into `reserving`
    only when a rescue entered it (see after_transition); the sweeper drives any driven
    state whose step holds no live claim.
    """
    if booking.state in (State.PAID, State.ORDERED):
        send_driver(booking.id, booking.state, enqueue)


def after_transition(booking: Booking, entered: list[State], enqueue: Enqueuer) -> None:
    """Send the follow-ups of the states just entered, and drive the current state."""
    for state in entered:
        if state == State.RESERVING and booking.rescue:
            enqueue.reserve(booking.id)  # late payment: hold the same items once more
        event = CALLBACK_ON_ENTRY.get(state)
        if event is not None:
            enqueue.notify(booking.id, event)
        if state == State.REFUND_REQUIRED:
            alert(
                "refund_required",
                booking.id,
                booking.reason or "money taken but no order can be made",
                state=booking.state.value,
            )
    drive(booking, enqueue)
