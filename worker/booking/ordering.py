"""Turn paid reservations into Korus orders exactly once (booking.create_order).

Korus has no idempotency key; it refuses a second order of a reservation (422) and lists
orders by externalReference (our booking id). The rules that make "exactly once" hold:

1. Before any order call the booking is moved, by compare-and-set, into `ordering` with a
   numbered attempt and a lease longer than the call's timeouts. Only the task that won
   that compare-and-set sends the call.
2. A task that finds `ordering` with a live lease held by another task does not call;
   it retries after the lease.
3. Once a call may have reached Korus and its answer is unknown (timeout, reset, 5xx, a
   dead worker), the booking goes through `order_uncertain` and is *reconciled* through
   `GET orders?external_reference=`; a new call is sent only for reservations that the
   listing shows unordered, and only by the task that recorded that finding.
4. Any 422 is reconciled too before the booking is given up; 422 "expired" with no order
   found ends in `refund_required`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from worker.alerts import alert
from worker.booking.context import RetryLater, StepContext
from worker.booking.effects import after_transition
from worker.booking.record import Booking, OrderAttempt, OrderedTicket, PlacedOrder
from worker.booking.states import State
from worker.booking.store import Change, UpdateResult
from worker.korus.errors import (
    KorusAuthError,
    KorusError,
    KorusOutcomeUnknownError,
    KorusRejectedError,
    KorusTransientError,
)
from worker.korus.iris import last_segment
from worker.korus.models import Order

_ACTIVE = (State.ORDERING, State.ORDER_UNCERTAIN)


def placed_from(order: Order) -> PlacedOrder:
    tickets = [
        OrderedTicket(
            id=ticket.id or last_segment(ticket.iri or ""),
            iri=ticket.iri or "",
            item_id=item.id or last_segment(item.iri or ""),
            voucher=ticket.voucher,
            status=ticket.status,
            required_beneficiary_fields=list(ticket.required_beneficiary_fields),
            seating=ticket.seating.model_dump(by_alias=True) if ticket.seating else None,
            occurs_at=ticket.occurs_at.isoformat() if ticket.occurs_at else None,
        )
        for item in order.items
        for ticket in item.tickets
    ]
    return PlacedOrder(
        id=order.id or last_segment(order.iri or ""),
        iri=order.iri or f"/v1/booking/orders/{order.id}",
        reference=order.reference,
        reservation=order.reservation_iri or "",
        total_incl_tax=order.total_amount_incl_tax,
        tickets=tickets,
        document_ids=[last_segment(iri) for iri in order.document_iris],
    )


def unordered(booking: Booking) -> list[str]:
    """IRIs of the booking's reservations with no known order (matched by id, so a
    relative or absolute IRI of the same reservation counts as one)."""
    done = {last_segment(o.reservation) for o in booking.orders}
    return [r.iri for r in booking.reservations if last_segment(r.iri) not in done]


def merge_orders(booking: Booking, placed: list[PlacedOrder]) -> bool:
    known = {last_segment(o.reservation) for o in booking.orders}
    ours = {last_segment(r.iri) for r in booking.reservations}
    added = False
    for order in placed:
        reservation_id = last_segment(order.reservation)
        if reservation_id in ours and reservation_id not in known:
            booking.orders.append(order)
            known.add(reservation_id)
            added = True
    return added


def claim(
    booking: Booking,
    task_id: str | None,
    now: datetime,
    lease: timedelta,
    expected: int | None,
    owner: str | None = None,
) -> Change | None:
    """Win the right to send one order call (rule 1). `expected`: attempt number seen."""
    attempt = booking.order_attempt
    if booking.state == State.PAID:
        pass
    elif booking.state == State.ORDERING and attempt is not None and not attempt.sent:
        if attempt.number != expected:
            return None
    else:
        return None
    booking.order_attempts += 1
    booking.order_attempt = OrderAttempt(
        number=booking.order_attempts,
        task_id=task_id,
        started_at=now,
        lease_until=now + lease,
        sent=True,
        owner=owner,
    )
    booking.state = State.ORDERING
    return Change(booking, f"order call {booking.order_attempts} starting")


def record_orders(
    booking: Booking, placed: list[PlacedOrder], failed: list[dict[str, Any]]
) -> Change | None:
    """Land orders (from an answer or from the listing) on an ordering booking."""
    if booking.state not in _ACTIVE:
        return None
    added = merge_orders(booking, placed)
    booking.failed_orders.extend(failed)
    if not unordered(booking):
        booking.state = State.ORDERED
        booking.order_attempt = None
        return Change(booking, f"{len(booking.orders)} order(s) confirmed")
    if failed:
        booking.state = State.REFUND_REQUIRED
        booking.reason = f"Korus refused to order {len(unordered(booking))} reservation(s)"
        return Change(booking, booking.reason)
    if added:
        return Change(booking, f"{len(booking.orders)} order(s) known so far", note=True)
    return None


def mark(booking: Booking, number: int, *, uncertain: bool, reason: str) -> Change | None:
    """After a failed call: uncertain (may exist) or not sent (safe to call again)."""
    attempt = booking.order_attempt
    if booking.state != State.ORDERING or attempt is None or attempt.number != number:
        return None
    if uncertain:
        booking.state = State.ORDER_UNCERTAIN
    else:
        attempt.sent = False
    return Change(booking, reason, note=not uncertain)


def after_reconcile(
    booking: Booking, placed: list[PlacedOrder], number: int | None
) -> Change | None:
    """Record what the listing shows; if some reservation is unordered, allow a new call."""
    if booking.state not in _ACTIVE:
        return None
    added = merge_orders(booking, placed)
    if not unordered(booking):
        booking.state = State.ORDERED
        booking.order_attempt = None
        return Change(booking, f"reconciled: {len(booking.orders)} order(s) found")
    attempt = booking.order_attempt
    if attempt is None or attempt.number != number:
        # Another attempt began since this listing was read: keep what it found, but
        # only the task that saw the current attempt may allow a new call.
        if added:
            return Change(booking, f"reconciled: {len(booking.orders)} order(s) found", note=True)
        return None
    attempt.sent = False
    booking.state = State.ORDERING
    return Change(booking, f"reconciled: {len(unordered(booking))} reservation(s) not ordered")


def give_up(booking: Booking, reason: str) -> Change | None:
    if booking.state not in _ACTIVE:
        return None
    booking.state = State.REFUND_REQUIRED
    booking.reason = reason
    return Change(booking, reason)


class OrderStep:
    def __init__(self, ctx: StepContext, booking_id: str, task_id: str | None) -> None:
        self.ctx = ctx
        self.booking_id = booking_id
        self.task_id = task_id
        self.lease = timedelta(seconds=ctx.settings.order_lease_seconds)

    def _apply(self, fn: Callable[[Booking], Change | None]) -> UpdateResult:
        result = self.ctx.store.update(self.booking_id, fn, task_id=self.task_id)
        if result.booking is not None:
            after_transition(result.booking, result.entered, self.ctx.enqueue)
        return result

    def _update(self, fn: Callable[[Booking], Change | None]) -> Booking | None:
        return self._apply(fn).booking

    def run(self) -> None:
        booking = self.ctx.store.load(self.booking_id)
        if booking is None:
            return
        now = self.ctx.now()
        attempt = booking.order_attempt
        if booking.state == State.ORDERING and attempt is not None and attempt.sent:
            # Live while its lease runs and its worker's liveness key exists: a killed
            # worker's call is reconciled at once, not after the whole lease.
            live = attempt.lease_until > now and self.ctx.owner_alive(attempt.owner)
            if live and attempt.task_id != self.task_id:
                wait = (attempt.lease_until - now).total_seconds() + 0.1
                raise RetryLater("another task's order call may be in flight", wait)
            booking = self.reconcile(booking)  # its update sends the follow-ups
        elif booking.state == State.ORDER_UNCERTAIN:
            booking = self.reconcile(booking)
        elif booking.state not in (State.PAID, State.ORDERING):
            after_transition(booking, [], self.ctx.enqueue)  # redelivered after the fact
            return
        if booking is None or booking.state not in (State.PAID, State.ORDERING):
            return
        expected = booking.order_attempt.number if booking.order_attempt else None
        owner = self.ctx.owner()
        result = self._apply(
            lambda b: claim(b, self.task_id, self.ctx.now(), self.lease, expected, owner)
        )
        claimed = result.booking
        if not result.changed or claimed is None or claimed.order_attempt is None:
            return  # another task won the claim, or the state moved on
        self.send(claimed, claimed.order_attempt.number)

    def reconcile(self, booking: Booking) -> Booking | None:
        """Rule 3: look the orders up by externalReference before any new call."""
        number = booking.order_attempt.number if booking.order_attempt else None
        found = self.ctx.korus.find_orders(booking.id)
        placed = [placed_from(order) for order in found]
        return self._update(lambda b: after_reconcile(b, placed, number))

    def _mark(self, number: int, *, uncertain: bool, reason: str) -> None:
        self._update(lambda b: mark(b, number, uncertain=uncertain, reason=reason))

    def send(self, booking: Booking, number: int) -> None:
        try:
            answer = self.ctx.korus.create_orders(
                unordered(booking),
                booking.customer.model_dump(exclude_none=True),
                booking.id,
            )
        except KorusOutcomeUnknownError as error:
            self._mark(number, uncertain=True, reason=f"order call outcome unknown: {error}")
            raise
        except KorusAuthError as error:
            # 401/403: Korus did not process the call; an operator must fix credentials.
            self._mark(number, uncertain=False, reason=f"order call refused by auth: {error}")
            alert("korus_auth", booking.id, str(error))
            raise KorusTransientError(str(error)) from error
        except KorusTransientError as error:
            self._mark(number, uncertain=False, reason=f"order call not processed: {error}")
            raise
        except KorusError as error:
            self._mark(number, uncertain=True, reason=f"order call refused: {error}")
            self.after_rejection(error)
            return
        placed = [placed_from(order) for order in answer.orders]
        failed = [dict(item) for item in answer.failed]
        result = self._apply(lambda b: record_orders(b, placed, failed))
        if not result.changed and result.booking is not None and result.booking.state in _ACTIVE:
            # A 2xx that names none of our reservations (empty or unexpected body): the
            # call took effect somehow; find out through the listing, never by calling.
            self._mark(number, uncertain=True, reason="order answer named no reservation")
            raise KorusOutcomeUnknownError("order answer named none of our reservations")
        if failed:
            alert("order_failed", booking.id, f"{len(failed)} reservation(s) could not be ordered")

    def after_rejection(self, error: KorusError) -> None:
        """Rule 4: a 422 (or other permanent refusal) is reconciled before giving up."""
        booking = self.ctx.store.load(self.booking_id)
        if booking is None:
            return
        found = [placed_from(o) for o in self.ctx.korus.find_orders(booking.id)]
        recorded = self._update(lambda b: record_orders(b, found, []))
        if recorded is not None and recorded.state != State.ORDER_UNCERTAIN:
            return
        if isinstance(error, KorusRejectedError) and error.already_ordered:
            alert("order_missing", self.booking_id, "Korus says already ordered; listing lacks it")
            raise KorusTransientError("already ordered but not listed yet") from error
        why = (
            "reservation expired before the order"
            if (isinstance(error, KorusRejectedError) and error.reservation_expired)
            else f"order refused: {error}"
        )
        self._update(lambda b: give_up(b, why))


def create_order(ctx: StepContext, booking_id: str, task_id: str | None) -> None:
    """Order the booking's reservations exactly once. See the module docstring."""
    OrderStep(ctx, booking_id, task_id).run()
