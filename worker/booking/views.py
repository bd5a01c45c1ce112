"""What of a booking leaves the server, for each of its three audiences: the only place
that decides it. Each audience's types list their fields; the builders below fill them.

- The merchant API (worker/http/merchant.py; worker/http/openapi.py documents these very
  types): `BookingView` (one booking with its timeline), `BookingSummary` (a booking as
  listed), `BookingPage`. camelCase keys.
- The merchant callback (worker/booking/callbacks.py signs and POSTs it): `CallbackBody`,
  whose `data` is a trimmed merchant view (the fields callbacks have always carried).
- The operator (`booking-worker status`, `list`, `cancel`, as tables or `--json`):
  `OperatorRecord` (the stored record, snake_case keys) and `OperatorSummary`.

Personal data leaves through none of them: not the customer, not the beneficiaries, not
the items (their `formData` holds visitor names; the operator sees offer and quantity),
and not the nested parts of Korus's failed items, whose shape is undocumented and may echo
a request's customer or form data (the operator sees their top-level scalars). A field
added to the record shows nowhere until a type here names it: tests/booking/test_views.py
lists each audience's exact fields and walks every output for personal values.

Each audience keeps the JSON it has always had, byte for byte (including its time format
and how it writes a zero total): shared parts are the booking's head, the payment and the
money helpers; the rest differs on purpose and is declared per audience.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from worker.booking.record import (
    Booking,
    HeldReservation,
    OrderAttempt,
    OrderedTicket,
    Payment,
    PlacedOrder,
    StepClaim,
    TicketDocument,
    TimelineEntry,
)
from worker.booking.states import State

# -- shared parts ------------------------------------------------------------------------


class View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _money(value: Decimal) -> str:
    # str() keeps the amount exactly as Korus gave it (no rounding to 2 places).
    return str(value)


def _money_or_none(value: Decimal | None) -> str | None:
    return None if value is None else _money(value)


def _nonzero_money(value: Decimal | None) -> str | None:
    """The total as the callback and the operator listing have always written it: null
    for a zero total too (the merchant API writes "0.00")."""
    return _money(value) if value else None


# The callback's times: `isoformat()` ("+00:00"); the merchant API and the operator
# record use pydantic's ISO 8601 ("Z").
OffsetTime = Annotated[datetime, PlainSerializer(lambda at: at.isoformat(), return_type=str)]
# The operator summary's times: `str()` ("2030-05-06 07:18:09+00:00").
SpacedTime = Annotated[datetime, PlainSerializer(lambda at: str(at), return_type=str)]


class BookingHead(View):
    """Which booking, and where it stands: the first fields of the merchant's views and of
    the callback's data."""

    id: str
    external_reference: str
    state: State
    reason: str | None = None


class PaymentView(View):
    payment_id: str
    amount: int = Field(description="Minor units (cents).")
    currency: str


def _payment(payment: Payment | None) -> PaymentView | None:
    if payment is None:
        return None
    return PaymentView(
        payment_id=payment.payment_id, amount=payment.amount_minor, currency=payment.currency
    )


# -- the merchant API --------------------------------------------------------------------


class ReservationView(View):
    id: str
    expires_at: datetime
    total_amount_incl_tax: str = Field(description='Decimal string, e.g. "42.50".')


class TicketView(View):
    id: str | None = None  # None while Korus has given the ticket only as a blank node
    voucher: str | None = None
    status: str | None = None
    seating: dict[str, Any] | None = None
    occurs_at: str | None = None


class OrderView(View):
    id: str
    reference: str | None = None
    total_amount_incl_tax: str | None = None
    tickets: list[TicketView]


class DocumentView(View):
    order_id: str
    document_id: str
    downloadable_at: datetime | None = None
    temporary_url: str | None = None
    url_expires_at: datetime | None = None


class TimelineEntryView(View):
    at: str
    from_: str | None = Field(default=None, alias="from")
    to: str
    reason: str | None = None
    task_id: str | None = None


class BookingSummary(BookingHead):
    """A booking as listed; `GET /v1/bookings/{id}` adds the timeline."""

    reservations: list[ReservationView]
    total_amount_incl_tax: str | None = Field(
        default=None, description="What the shop charges: the sum of the held reservations."
    )
    currency: str
    expires_at: datetime | None = Field(
        default=None, description="The earliest reservation expiry: pay before this."
    )
    payment: PaymentView | None = None
    orders: list[OrderView]
    documents: list[DocumentView]
    created_at: datetime
    updated_at: datetime


class BookingView(BookingSummary):
    timeline: list[TimelineEntryView]


class BookingPage(View):
    items: list[BookingSummary]
    next_cursor: str | None = Field(
        default=None, description="Opaque; pass as `cursor` for the next page. Null: no more."
    )


def _merchant_ticket(ticket: OrderedTicket) -> TicketView:
    return TicketView(
        id=ticket.id,
        voucher=ticket.voucher,
        status=ticket.status,
        seating=ticket.seating,
        occurs_at=ticket.occurs_at,
    )


def _merchant_order(order: PlacedOrder) -> OrderView:
    return OrderView(
        id=order.id,
        reference=order.reference,
        total_amount_incl_tax=_money_or_none(order.total_incl_tax),
        tickets=[_merchant_ticket(t) for t in order.tickets],
    )


def _merchant_document(document: TicketDocument) -> DocumentView:
    return DocumentView(
        order_id=document.order_id,
        document_id=document.document_id,
        downloadable_at=document.downloadable_at,
        temporary_url=document.temporary_url,
        url_expires_at=document.url_expires_at,
    )


def merchant_summary(booking: Booking) -> BookingSummary:
    return BookingSummary(
        id=booking.id,
        external_reference=booking.external_reference,
        state=booking.state,
        reason=booking.reason,
        reservations=[
            ReservationView(
                id=r.id, expires_at=r.expires_at, total_amount_incl_tax=_money(r.total_incl_tax)
            )
            for r in booking.reservations
        ],
        total_amount_incl_tax=_money_or_none(booking.total_incl_tax),
        currency=booking.currency,
        expires_at=booking.earliest_expires_at,
        payment=_payment(booking.payment),
        orders=[_merchant_order(o) for o in booking.orders],
        documents=[_merchant_document(d) for d in booking.documents],
        created_at=booking.created_at,
        updated_at=booking.updated_at,
    )


def merchant_view(booking: Booking, timeline: list[TimelineEntry]) -> BookingView:
    """The booking with its timeline (entries as `BookingStore.timeline` reads them)."""
    entries = [
        TimelineEntryView(
            at=e["at"], **{"from": e["from"]}, to=e["to"], reason=e["reason"],
            task_id=e["task_id"],
        )
        for e in timeline
    ]
    return BookingView(**dict(merchant_summary(booking)), timeline=entries)


def dump(view: BaseModel) -> dict[str, Any]:
    """The JSON value of a merchant or operator view."""
    return view.model_dump(mode="json", by_alias=True)


# -- the merchant callback ---------------------------------------------------------------


class CallbackTicket(View):
    """A ticket in a callback: the merchant's `TicketView` less `status`."""

    id: str | None
    voucher: str | None
    seating: dict[str, Any] | None
    occurs_at: str | None


class CallbackOrder(View):
    """An order in a callback: the merchant's `OrderView` less its total."""

    id: str
    reference: str | None
    tickets: list[CallbackTicket]


class CallbackDocument(View):
    """A document in a callback: the merchant's `DocumentView` less `downloadableAt`."""

    order_id: str
    document_id: str
    temporary_url: str | None
    url_expires_at: OffsetTime | None


class CallbackData(BookingHead):
    """The booking in a callback. `payment`, `orders` and `documents` are left out (not
    null) while the booking has none: the builder leaves them unset, and
    `CallbackBody.json_value` drops unset fields."""

    total_amount_incl_tax: str | None
    currency: str
    expires_at: OffsetTime | None
    payment: PaymentView | None = None
    orders: list[CallbackOrder] = Field(default_factory=list)
    documents: list[CallbackDocument] = Field(default_factory=list)


class CallbackBody(BaseModel):
    """The signed body of a merchant callback (Standard Webhooks: type, timestamp, data)."""

    type: str
    timestamp: int
    data: CallbackData

    def json_value(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _callback_order(order: PlacedOrder) -> CallbackOrder:
    return CallbackOrder(
        id=order.id,
        reference=order.reference,
        tickets=[
            CallbackTicket(id=t.id, voucher=t.voucher, seating=t.seating, occurs_at=t.occurs_at)
            for t in order.tickets
        ],
    )


def _callback_document(document: TicketDocument) -> CallbackDocument:
    return CallbackDocument(
        order_id=document.order_id,
        document_id=document.document_id,
        temporary_url=document.temporary_url,
        url_expires_at=document.url_expires_at,
    )


def callback_body(booking: Booking, event_type: str, timestamp: int) -> CallbackBody:
    """What the merchant's callback endpoint gets: ids, state, orders, vouchers, seating,
    documents. Built from the record at sending time, so a late event carries the latest
    state."""
    present: dict[str, Any] = {}
    if booking.payment is not None:
        present["payment"] = _payment(booking.payment)
    if booking.orders:
        present["orders"] = [_callback_order(o) for o in booking.orders]
    if booking.documents:
        present["documents"] = [_callback_document(d) for d in booking.documents]
    data = CallbackData(
        id=booking.id,
        external_reference=booking.external_reference,
        state=booking.state,
        reason=booking.reason,
        total_amount_incl_tax=_nonzero_money(booking.total_incl_tax),
        currency=booking.currency,
        expires_at=booking.earliest_expires_at,
        **present,
    )
    return CallbackBody(type=event_type, timestamp=timestamp, data=data)


# -- the operator ------------------------------------------------------------------------

JsonScalar = str | int | float | bool | None


class OperatorItem(BaseModel):
    """A requested item as the operator sees it: its `ticketSessions` are left out (their
    `formData` holds visitor names)."""

    offer: str | None
    quantity: int | None


class OperatorRecord(BaseModel):
    """The record as `booking-worker status` shows it: every stored field, in the stored
    order and with the stored (snake_case) keys, but the customer and the beneficiaries;
    items reduced to `OperatorItem` (last), Korus's failed items to their top-level
    scalars (offer, quantity, code, message, ...). Document URLs stay: operators are
    trusted, and a URL lapses within the hour."""

    id: str
    external_reference: str
    merchant: str
    state: State
    version: int
    created_at: datetime
    updated_at: datetime
    callback_url: str | None
    language: str | None
    policy: str
    reservations: list[HeldReservation]
    failed_reservations: list[dict[str, JsonScalar]]
    released_reservations: list[HeldReservation]
    total_incl_tax: Decimal | None
    currency: str
    reserve_attempts: int
    rescue: bool
    payment: Payment | None
    pending_payment: Payment | None
    extra_payments: list[Payment]
    order_attempt: OrderAttempt | None
    order_attempts: int
    orders: list[PlacedOrder]
    failed_orders: list[dict[str, JsonScalar]]
    order_unresolved_since: datetime | None
    documents: list[TicketDocument]
    beneficiaries_sent: list[str]  # ticket ids
    documents_missing_since: datetime | None
    claim: StepClaim | None
    step_failures: int
    unexpected_failures: int
    retry_at: datetime | None
    reason: str | None
    alerts: list[str]
    items: list[OperatorItem]

    @property
    def earliest_expires_at(self) -> datetime | None:
        return min((r.expires_at for r in self.reservations), default=None)


# The record's fields the operator gets reduced, not as stored.
_REDUCED = frozenset({"items", "failed_reservations", "failed_orders"})


def _scalars(failed: dict[str, Any]) -> dict[str, JsonScalar]:
    """A failed item's top-level strings, numbers, booleans and nulls; nested parts (an
    echoed `customer`, `ticketSessions` with `formData`) are left out."""
    return {k: v for k, v in failed.items() if v is None or isinstance(v, str | int | float)}


def operator_record(booking: Booking) -> OperatorRecord:
    """Each field `OperatorRecord` names, taken from the record's field of that name."""
    stored = {n: getattr(booking, n) for n in OperatorRecord.model_fields if n not in _REDUCED}
    return OperatorRecord(
        **stored,
        items=[
            OperatorItem(offer=item.offer, quantity=item.quantity)
            for item in booking.items
        ],
        failed_reservations=[_scalars(f) for f in booking.failed_reservations],
        failed_orders=[_scalars(f) for f in booking.failed_orders],
    )


class OperatorSummary(View):
    """A booking as `booking-worker list --json` and `cancel --json` show it."""

    id: str
    state: State
    external_reference: str
    total_amount_incl_tax: str | None
    currency: str
    expires_at: SpacedTime | None
    updated_at: SpacedTime


def operator_summary(booking: Booking) -> OperatorSummary:
    return OperatorSummary(
        id=booking.id,
        state=booking.state,
        external_reference=booking.external_reference,
        total_amount_incl_tax=_nonzero_money(booking.total_incl_tax),
        currency=booking.currency,
        expires_at=booking.earliest_expires_at,
        updated_at=booking.updated_at,
    )
