"""Turn paid reservations into Korus orders exactly once (booking.create_order).

Korus has no idempotency key; it refuses a second order of a reservation (422) and lists
orders by externalReference (our booking id). The rules that make "exactly once" hold:

1. Before any order call the booking is moved, by compare-and-set, into `ordering` with a
   numbered attempt and a lease longer than the call's timeouts. Only the task that won
   that compare-and-set sends the call.
2. A task that finds `ordering` with a live attempt (lease running, owner's liveness key
   present) does not call, whoever holds it (a second delivery of the same message too);
   it looks again in countdown-sized steps until the owner is gone or the lease ends.
3. Once a call may have reached Korus and its answer is unknown (timeout, reset, 5xx, a
   dead worker), the booking goes through `order_uncertain` and is *reconciled* through
   `GET orders?external_reference=`; a new call is sent only for reservations that the
   listing shows unordered, and only by the task that recorded that finding.
4. A refusal (any 422, or `failedOrders` in a 200) is reconciled through the listing
   before anything else. Only the documented expiry (`reservations[i].expired` or its
   code) with no order listed ends in `refund_required`. Any other refusal is not
   understood (what Korus answers to a second order of a reservation is undocumented)
   and the listing may lag: the booking stays `order_uncertain` and the listing is read
   again with backoff (`RetryLater`) for ORDER_RECONCILE_WINDOW_SECONDS from the first
   refusal; then a person is alerted. No new order call is sent for a refused attempt,
   and nothing is refunded automatically.
5. Ticket and item ids are taken only from real order-ticket IRIs, never from the blank
   nodes (`/.well-known/genid/...`) the documented order answer gives.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from worker.alerts import alert
from worker.booking.context import RetryLater, StepContext
from worker.booking.effects import after_transition
from worker.booking.korus_mapping import customer as korus_customer
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
from worker.korus.iris import iri_of, last_segment, order_item_id, order_ticket_ids
from worker.korus.models import Order

_ACTIVE = (State.ORDERING, State.ORDER_UNCERTAIN)
_SEATING_KEYS = ("seatNumber", "row", "level", "stand", "stair", "gate")


def placed_from(order: Order) -> PlacedOrder | None:
    """What the booking keeps of a Korus order; None for an order with no id or IRI.

    Ticket and item ids come only from real IRIs: a ticket given as a blank node keeps
    `id=None` (documents.py fetches the order when it needs them)."""
    order_iri = order.real_iri
    order_id = order.id or (last_segment(order_iri) if order_iri else None)
    if not order_id:
        return None
    tickets = []
    for item in order.items:
        item_id = order_item_id(item.real_iri)
        for ticket in item.tickets:
            ids = order_ticket_ids(ticket.real_iri)
            seating = None
            if ticket.seating is not None:
                raw = ticket.seating.model_dump(by_alias=True)
                seating = {k: v for k, v in raw.items() if k in _SEATING_KEYS}
            tickets.append(
                OrderedTicket(
                    id=ids[2] if ids else None,
                    iri=ticket.real_iri if ids else None,
                    item_id=ids[1] if ids else item_id,
                    ticket=iri_of(ticket.ticket),
                    voucher=ticket.voucher,
                    status=ticket.status,
                    required_beneficiary_fields=list(ticket.required_beneficiary_fields),
                    seating=seating,
                    occurs_at=ticket.occurs_at.isoformat() if ticket.occurs_at else None,
                )
            )
    return PlacedOrder(
        id=order_id,
        iri=order_iri or f"/v1/booking/orders/{order_id}",
        reference=order.reference,
        reservation=order.reservation_iri or "",
        total_incl_tax=order.total_amount_incl_tax,
        tickets=tickets,
        document_ids=[last_segment(iri) for iri in order.document_iris],
    )


def placed_all(orders: list[Order]) -> list[PlacedOrder]:
    return [placed for placed in map(placed_from, orders) if placed is not None]


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


def _confirmed(booking: Booking, reason: str) -> Change:
    booking.state = State.ORDERED
    booking.order_attempt = None
    booking.order_unresolved_since = None
    return Change(booking, reason)


def record_orders(
    booking: Booking, placed: list[PlacedOrder], failed: list[dict[str, Any]]
) -> Change | None:
    """Land orders (from an answer or from the listing) on an ordering booking.

    `failedOrders` are kept as Korus sent them; they decide nothing here: the caller
    reconciles them through the listing (rule 4)."""
    if booking.state not in _ACTIVE:
        return None
    added = merge_orders(booking, placed)
    booking.failed_orders.extend(failed)
    if not unordered(booking):
        return _confirmed(booking, f"{len(booking.orders)} order(s) confirmed")
    if added or failed:
        why = f"{len(booking.orders)} order(s) known so far, {len(failed)} failed order(s)"
        return Change(booking, why, note=True)
    return None


def mark_refused(booking: Booking, number: int, now: datetime, reason: str) -> Change | None:
    """Korus refused the call (rule 4): uncertain until the listing says otherwise."""
    attempt = booking.order_attempt
    if booking.state not in _ACTIVE or attempt is None or attempt.number != number:
        return None
    booking.state = State.ORDER_UNCERTAIN
    attempt.refused = True
    if booking.order_unresolved_since is None:
        booking.order_unresolved_since = now
    return Change(booking, reason)


def resolve_refusal(
    booking: Booking, placed: list[PlacedOrder], expired: bool, now: datetime
) -> Change | None:
    """What the listing read after a refusal means (rule 4)."""
    if booking.state not in _ACTIVE:
        return None
    added = merge_orders(booking, placed)
    if not unordered(booking):
        return _confirmed(booking, f"reconciled: {len(booking.orders)} order(s) found")
    if expired:
        booking.state = State.REFUND_REQUIRED
        booking.reason = "reservation expired before the order"
        return Change(booking, booking.reason)
    if booking.order_unresolved_since is None:  # refused before this field existed
        booking.order_unresolved_since = now
        added = True
    if added:
        return Change(booking, f"reconciled: {len(booking.orders)} order(s) found", note=True)
    return None


def refused(booking: Booking) -> bool:
    attempt = booking.order_attempt
    return (
        booking.state == State.ORDER_UNCERTAIN and attempt is not None and attempt.refused
    )


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
        return _confirmed(booking, f"reconciled: {len(booking.orders)} order(s) found")
    attempt = booking.order_attempt
    if attempt is not None and attempt.refused:
        # Korus refused the last call: the listing is what we wait for, never a new call.
        if added:
            return Change(booking, f"reconciled: {len(booking.orders)} order(s) found", note=True)
        return None
    if attempt is None or attempt.number != number:
        # Another attempt began since this listing was read: keep what it found, but
        # only the task that saw the current attempt may allow a new call.
        if added:
            return Change(booking, f"reconciled: {len(booking.orders)} order(s) found", note=True)
        return None
    attempt.sent = False
    booking.state = State.ORDERING
    return Change(booking, f"reconciled: {len(unordered(booking))} reservation(s) not ordered")


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
            # worker's call is reconciled once its key lapses, not after the whole
            # lease. A live attempt of this very task id gets no favour: it may be a
            # second delivery of the message (RabbitMQ requeues on a connection loss)
            # while the first copy is still in its call, and a listing read now could
            # miss that order and allow a second call. So the task looks again in short
            # steps (a broker countdown) until the owner is gone or the lease ends.
            live = attempt.lease_until > now and self.ctx.owner_alive(attempt.owner)
            if live:
                remaining = (attempt.lease_until - now).total_seconds() + 0.1
                step = max(1.0, self.ctx.settings.countdown_max_seconds)
                raise RetryLater("an order call of this booking may be in flight",
                                 min(remaining, step))
            booking = self.reconcile(booking)  # its update sends the follow-ups
        elif booking.state == State.ORDER_UNCERTAIN:
            booking = self.reconcile(booking)
        elif booking.state not in (State.PAID, State.ORDERING):
            after_transition(booking, [], self.ctx.enqueue)  # redelivered after the fact
            return
        if booking is not None and refused(booking):
            self.wait_or_alert(booking)
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
        placed = placed_all(self.ctx.korus.find_orders(booking.id, language=booking.language))
        return self._update(lambda b: after_reconcile(b, placed, number))

    def wait_or_alert(self, booking: Booking) -> None:
        """Rule 4: read the listing again later, with backoff, until the window ends;
        then alert a person (the booking stays `order_uncertain`, nothing is refunded)."""
        settings = self.ctx.settings
        now = self.ctx.now()
        since = booking.order_unresolved_since or now
        elapsed = (now - since).total_seconds()
        remaining = settings.order_reconcile_window_seconds - elapsed
        if remaining <= 0:
            alert(
                "order_unresolved",
                booking.id,
                f"Korus refused the order call and the listing shows no order after "
                f"{elapsed:.0f}s; a person must check Korus (no refund was made)",
            )
            return
        countdown = listing_backoff(elapsed, settings.listing_backoff_cap_seconds, remaining)
        raise RetryLater("order refused and not listed yet; reading the listing again", countdown)

    def _mark(self, number: int, *, uncertain: bool, reason: str) -> None:
        self._update(lambda b: mark(b, number, uncertain=uncertain, reason=reason))

    def send(self, booking: Booking, number: int) -> None:
        try:
            answer = self.ctx.korus.create_orders(
                unordered(booking),
                korus_customer(booking.customer),
                booking.id,
                language=booking.language,
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
            self._refused(number, f"order call refused: {error}")
            expired = isinstance(error, KorusRejectedError) and error.reservation_expired
            self.after_refusal(expired)
            return
        placed = placed_all(answer.orders)
        failed = [dict(item) for item in answer.failed]
        result = self._apply(lambda b: record_orders(b, placed, failed))
        after = result.booking
        if after is None or after.state not in _ACTIVE:
            return
        if failed:
            # failedOrders is no verdict: the listing decides (rule 4).
            self._refused(number, f"Korus listed {len(failed)} failed order(s)")
            self.after_refusal(expired=False)
        elif not result.changed:
            # A 2xx that names none of our reservations (empty or unexpected body): the
            # call took effect somehow; find out through the listing, never by calling.
            self._mark(number, uncertain=True, reason="order answer named no reservation")
            raise KorusOutcomeUnknownError("order answer named none of our reservations")

    def _refused(self, number: int, reason: str) -> None:
        now = self.ctx.now()
        self._update(lambda b: mark_refused(b, number, now, reason))

    def after_refusal(self, expired: bool) -> None:
        """Rule 4: a refusal is reconciled through the listing before anything else."""
        booking = self.ctx.store.load(self.booking_id)
        if booking is None or booking.state not in _ACTIVE:
            return
        placed = placed_all(self.ctx.korus.find_orders(booking.id, language=booking.language))
        now = self.ctx.now()
        recorded = self._update(lambda b: resolve_refusal(b, placed, expired, now))
        if recorded is not None and refused(recorded):
            self.wait_or_alert(recorded)


def listing_backoff(elapsed: float, cap: float, remaining: float) -> float:
    """The pause before reading a lagging listing again: half the time waited so far
    (so the looks grow geometrically), at least 2 s, at most `cap`, and never past the
    end of the window (plus a moment, so the last look finds the window over)."""
    return min(max(2.0, elapsed / 2), cap, remaining + 0.5)


def create_order(ctx: StepContext, booking_id: str, task_id: str | None) -> None:
    """Order the booking's reservations exactly once. See the module docstring."""
    OrderStep(ctx, booking_id, task_id).run()
