"""Booking states and the transitions allowed between them (design.md, "Booking states")."""

from __future__ import annotations

from enum import StrEnum

from worker.booking.task_names import DriverTask, TaskName


class State(StrEnum):
    RECEIVED = "received"
    RESERVING = "reserving"
    AWAITING_PAYMENT = "awaiting_payment"
    PAID = "paid"
    ORDERING = "ordering"
    ORDER_UNCERTAIN = "order_uncertain"
    ORDERED = "ordered"
    FETCHING_DOCUMENTS = "fetching_documents"
    AWAITING_BENEFICIARY = "awaiting_beneficiary"
    DOCUMENTS_PENDING = "documents_pending"
    COMPLETED = "completed"
    RESERVATION_FAILED = "reservation_failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUND_REQUIRED = "refund_required"


# Closed: no task works on the booking any more. Only money arriving late can reopen a
# cancelled, expired or failed booking, and then only towards a rescue or a refund.
CLOSED: frozenset[State] = frozenset(
    {
        State.COMPLETED,
        State.RESERVATION_FAILED,
        State.CANCELLED,
        State.EXPIRED,
        State.REFUND_REQUIRED,
    }
)

# Final: nothing, not even a payment, moves the booking out of these.
FINAL: frozenset[State] = frozenset({State.COMPLETED, State.REFUND_REQUIRED})

# States in which money may have been taken and an order is (or will be) on its way.
PAID_STATES: frozenset[State] = frozenset(
    {
        State.PAID,
        State.ORDERING,
        State.ORDER_UNCERTAIN,
        State.ORDERED,
        State.FETCHING_DOCUMENTS,
        State.AWAITING_BENEFICIARY,
        State.DOCUMENTS_PENDING,
        State.COMPLETED,
    }
)

# Before payment: a merchant cancel or a payment failure may still stop the booking.
CANCELLABLE: frozenset[State] = frozenset({State.RECEIVED, State.RESERVING, State.AWAITING_PAYMENT})

_S = State
ALLOWED: dict[State, frozenset[State]] = {
    _S.RECEIVED: frozenset({_S.RESERVING, _S.CANCELLED}),
    _S.RESERVING: frozenset(
        {_S.AWAITING_PAYMENT, _S.PAID, _S.RESERVATION_FAILED, _S.CANCELLED, _S.REFUND_REQUIRED}
    ),
    # reserving: money came after the hold lapsed but before the sweeper closed it (rescue).
    _S.AWAITING_PAYMENT: frozenset(
        {_S.PAID, _S.RESERVING, _S.CANCELLED, _S.EXPIRED, _S.REFUND_REQUIRED}
    ),
    _S.PAID: frozenset({_S.ORDERING, _S.REFUND_REQUIRED}),
    _S.ORDERING: frozenset({_S.ORDERED, _S.ORDER_UNCERTAIN, _S.REFUND_REQUIRED}),
    _S.ORDER_UNCERTAIN: frozenset({_S.ORDERING, _S.ORDERED, _S.REFUND_REQUIRED}),
    _S.ORDERED: frozenset({_S.FETCHING_DOCUMENTS}),
    _S.FETCHING_DOCUMENTS: frozenset({_S.COMPLETED, _S.AWAITING_BENEFICIARY, _S.DOCUMENTS_PENDING}),
    # refund_required: beneficiary data never came within BENEFICIARY_WAIT_SECONDS.
    _S.AWAITING_BENEFICIARY: frozenset({_S.FETCHING_DOCUMENTS, _S.REFUND_REQUIRED}),
    _S.DOCUMENTS_PENDING: frozenset({_S.FETCHING_DOCUMENTS}),
    # Late payment rescue: money for a cancelled booking whose hold is still live orders
    # that hold (paid); for a lapsed hold it reserves the same items once more (back to
    # reserving, flagged as a rescue) or ends in a refund.
    _S.CANCELLED: frozenset({_S.PAID, _S.RESERVING, _S.REFUND_REQUIRED}),
    _S.EXPIRED: frozenset({_S.RESERVING, _S.REFUND_REQUIRED}),
    _S.COMPLETED: frozenset(),
    _S.RESERVATION_FAILED: frozenset({_S.REFUND_REQUIRED}),
    _S.REFUND_REQUIRED: frozenset(),
}


def can_move(source: State, target: State) -> bool:
    return target in ALLOWED[source]


# The one map from a state to the task that drives a booking out of it, used by effects,
# BookingService.retry and the sweeper. States absent here are waits (payment, documents'
# downloadableAt) or closed. Failure counts of a step last while its task drives the
# booking (ordering <-> order_uncertain is one step), and restart when another takes over.
DRIVER: dict[State, DriverTask] = {
    State.RECEIVED: TaskName.RESERVE,
    State.RESERVING: TaskName.RESERVE,
    State.PAID: TaskName.CREATE_ORDER,
    State.ORDERING: TaskName.CREATE_ORDER,
    State.ORDER_UNCERTAIN: TaskName.CREATE_ORDER,
    State.ORDERED: TaskName.FETCH_DOCUMENTS,
    State.FETCHING_DOCUMENTS: TaskName.FETCH_DOCUMENTS,
    State.DOCUMENTS_PENDING: TaskName.FETCH_DOCUMENTS,
    State.AWAITING_BENEFICIARY: TaskName.FETCH_DOCUMENTS,
}
