"""What the merchant API shows of a booking (camelCase JSON), and nothing more.

The view is built field by field from the record: the customer and beneficiaries (personal
data), the raw Korus items, attempts and alerts never leave the server.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from worker.booking.record import Booking
from worker.booking.states import State


class View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _money(value: Decimal) -> str:
    # str() keeps the amount exactly as Korus gave it (no rounding to 2 places).
    return str(value)


def _money_or_none(value: Decimal | None) -> str | None:
    return None if value is None else _money(value)


class ReservationView(View):
    id: str
    expires_at: datetime
    total_amount_incl_tax: str = Field(description='Decimal string, e.g. "42.50".')


class PaymentView(View):
    payment_id: str
    amount: int = Field(description="Minor units (cents).")
    currency: str


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


class BookingSummary(View):
    """A booking as listed; `GET /v1/bookings/{id}` adds the timeline."""

    id: str
    external_reference: str
    state: State
    reason: str | None = None
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


def _summary_fields(booking: Booking) -> dict[str, Any]:
    payment = booking.payment
    return {
        "id": booking.id,
        "external_reference": booking.external_reference,
        "state": booking.state,
        "reason": booking.reason,
        "reservations": [
            ReservationView(
                id=r.id, expires_at=r.expires_at, total_amount_incl_tax=_money(r.total_incl_tax)
            )
            for r in booking.reservations
        ],
        "total_amount_incl_tax": _money_or_none(booking.total_incl_tax),
        "currency": booking.currency,
        "expires_at": booking.earliest_expires_at,
        "payment": None
        if payment is None
        else PaymentView(
            payment_id=payment.payment_id, amount=payment.amount_minor, currency=payment.currency
        ),
        "orders": [
            OrderView(
                id=o.id,
                reference=o.reference,
                total_amount_incl_tax=_money_or_none(o.total_incl_tax),
                tickets=[
                    TicketView(
                        id=t.id,
                        voucher=t.voucher,
                        status=t.status,
                        seating=t.seating,
                        occurs_at=t.occurs_at,
                    )
                    for t in o.tickets
                ],
            )
            for o in booking.orders
        ],
        "documents": [
            DocumentView(
                order_id=d.order_id,
                document_id=d.document_id,
                downloadable_at=d.downloadable_at,
                temporary_url=d.temporary_url,
                url_expires_at=d.url_expires_at,
            )
            for d in booking.documents
        ],
        "created_at": booking.created_at,
        "updated_at": booking.updated_at,
    }


def booking_summary(booking: Booking) -> BookingSummary:
    return BookingSummary(**_summary_fields(booking))


def booking_view(booking: Booking, timeline: list[dict[str, Any]]) -> BookingView:
    entries = [
        TimelineEntryView(
            at=str(e.get("at")),
            **{"from": e.get("from")},
            to=str(e.get("to")),
            reason=e.get("reason"),
            task_id=e.get("task_id"),
        )
        for e in timeline
    ]
    return BookingView(**_summary_fields(booking), timeline=entries)


def dump(view: BaseModel) -> dict[str, Any]:
    return view.model_dump(mode="json", by_alias=True)
