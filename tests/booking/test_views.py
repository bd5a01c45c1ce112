"""What each audience sees of a booking (worker/booking/views.py).

A booking with every part filled (holds, payments, an order with a real and a blank-node
ticket, documents with and without URL, failed items echoing the request, a claim, an
order attempt) and with personal data wherever the record keeps some (customer,
beneficiaries, the items' form data) is projected for the merchant API, the callback and
the operator. Each output's fields are listed here exactly, in order: a field added to a
view fails this module until it is added below, on purpose. Then every string of every
output (keys and values) is searched for the personal values.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import booking_in
from worker.booking.record import (
    Beneficiary,
    Booking,
    Customer,
    HeldReservation,
    OrderAttempt,
    OrderedTicket,
    Payment,
    PlacedOrder,
    ReservationItem,
    StepClaim,
    TicketDocument,
    TimelineEntry,
    utcnow,
)
from worker.booking.states import State
from worker.booking.views import (
    BookingPage,
    OperatorRecord,
    callback_body,
    dump,
    merchant_summary,
    merchant_view,
    operator_record,
    operator_summary,
)

CUSTOMER = Customer(
    firstname="Grace", lastname="Hopper", email="grace@example.com", phone="+33123456789",
    country="FR", language="fr", title="Rear Admiral", optin=True,
)
BENEFICIARY = Beneficiary.model_validate({
    "firstname": "Augusta", "lastname": "Lovelace", "email": "ada@example.org",
    "phone": "+44700900123", "dateOfBirth": "1815-12-10", "placeOfBirth": "Piccadilly",
})
VISITOR = "Visitor-Babbage"
# Every personal value the fixture holds: none may appear in any output, not even inside
# a longer string.
PERSONAL = (
    "Grace", "Hopper", "grace@example.com", "+33123456789", "Rear Admiral",
    "Augusta", "Lovelace", "ada@example.org", "+44700900123", "1815-12-10", "Piccadilly",
    VISITOR,
)
FORM = {"form": "/v1/forms/f", "fields": [{"field": "/v1/forms/f/fields/name", "value": VISITOR}]}
OFFER = "/v1/ticketing/catalogs/c/offers/o"
TICKET = OFFER + "/tickets/t"
TIMELINE: list[TimelineEntry] = [
    {"at": "2030-01-01T00:00:00Z", "from": None, "to": "received", "reason": "created",
     "task_id": None},
    {"at": "2030-01-01T00:00:01Z", "from": "received", "to": "reserving", "reason": None,
     "task_id": "t-1"},
]


def rich_booking() -> Booking:
    """A completed booking with every part of the record filled."""
    now = utcnow()
    booking = booking_in(State.COMPLETED, now=now, holds=2, hold_total=Decimal("21.50"))
    item = {"offer": OFFER, "quantity": 1, "ticketSessions": [{"ticket": TICKET, "formData": FORM}]}
    booking.customer = CUSTOMER
    booking.beneficiaries = [BENEFICIARY]
    booking.items = [ReservationItem.model_validate(item)]
    booking.callback_url = "https://shop.example/callbacks"
    booking.language = "fr"
    booking.reason = "1 order(s) confirmed"
    # Korus's failed items are kept raw: here they echo the request, personal parts too.
    booking.failed_reservations = [{**item, "code": "subsystem", "message": "no answer"}]
    booking.failed_orders = [
        {"reservation": "/v1/booking/reservations/r9", "customer": CUSTOMER.model_dump(),
         "code": "refused", "message": "refused"}
    ]
    booking.released_reservations = [
        HeldReservation(id="r9", iri="/v1/booking/reservations/r9", expires_at=now,
                        total_incl_tax=Decimal("5"), offer=OFFER)
    ]
    booking.pending_payment = Payment(provider="stripe", event_id="evt_p", payment_id="pi_p",
                                      amount_minor=4300, currency="eur", received_at=now)
    booking.extra_payments = [booking.pending_payment]
    booking.order_attempt = OrderAttempt(number=1, task_id="t-2", started_at=now,
                                         lease_until=now + timedelta(seconds=30), owner="h:1")
    booking.claim = StepClaim(step="documents", number=1, task_id="t-3", owner="h:1",
                              started_at=now, lease_until=now + timedelta(seconds=30))
    booking.orders = [
        PlacedOrder(
            id="o1", iri="/v1/booking/orders/o1", reference="KT-ORD-1",
            reservation="/v1/booking/reservations/r0", total_incl_tax=Decimal("43.00"),
            tickets=[
                OrderedTicket(id="t1", iri="/v1/booking/orders/o1/items/i1/tickets/t1",
                              item_id="i1", ticket=TICKET, voucher="V-1", status="validated",
                              required_beneficiary_fields=["/v1/forms/f/fields/name"],
                              seating={"row": "A", "seatNumber": "3"},
                              occurs_at="2030-06-01T20:00:00+02:00"),
                OrderedTicket(ticket=TICKET),  # a blank node: no id
            ],
            document_ids=["d1", "d2"],
        )
    ]
    booking.documents = [
        TicketDocument(order_id="o1", document_id="d1", downloadable_at=now,
                       temporary_url="https://korus.example/d1?Expires=1",
                       url_expires_at=now + timedelta(minutes=30), cached_language="fr"),
        TicketDocument(order_id="o1", document_id="d2"),
    ]
    booking.beneficiaries_sent = ["t1"]
    booking.alerts = ["documents_slow"]
    return booking


def paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of a JSON value in document order (`a.b`, list items as `a[]`);
    `seating` is Korus's own object, passed on as given, so its keys are not listed."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            if key != "seating":
                yield from paths(item, path)
    elif isinstance(value, list):
        for item in value:
            yield from paths(item, prefix + "[]")


def fields(value: Any) -> list[str]:
    return list(dict.fromkeys(paths(value)))


def strings(value: Any) -> Iterator[str]:
    """Every key and string value of a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


TICKET_FIELDS = ["id", "voucher", "status", "seating", "occursAt"]
MERCHANT_SUMMARY = [
    "id", "externalReference", "state", "reason",
    "reservations", "reservations[].id", "reservations[].expiresAt",
    "reservations[].totalAmountInclTax",
    "totalAmountInclTax", "currency", "expiresAt",
    "payment", "payment.paymentId", "payment.amount", "payment.currency",
    "orders", "orders[].id", "orders[].reference", "orders[].totalAmountInclTax",
    "orders[].tickets", *(f"orders[].tickets[].{f}" for f in TICKET_FIELDS),
    "documents", "documents[].orderId", "documents[].documentId", "documents[].downloadableAt",
    "documents[].temporaryUrl", "documents[].urlExpiresAt",
    "createdAt", "updatedAt",
]
MERCHANT_VIEW = [
    *MERCHANT_SUMMARY,
    "timeline", "timeline[].at", "timeline[].from", "timeline[].to", "timeline[].reason",
    "timeline[].taskId",
]
CALLBACK = [
    "type", "timestamp", "data",
    "data.id", "data.externalReference", "data.state", "data.reason",
    "data.totalAmountInclTax", "data.currency", "data.expiresAt",
    "data.payment", "data.payment.paymentId", "data.payment.amount", "data.payment.currency",
    "data.orders", "data.orders[].id", "data.orders[].reference", "data.orders[].tickets",
    "data.orders[].tickets[].id", "data.orders[].tickets[].voucher",
    "data.orders[].tickets[].seating", "data.orders[].tickets[].occursAt",
    "data.documents", "data.documents[].orderId", "data.documents[].documentId",
    "data.documents[].temporaryUrl", "data.documents[].urlExpiresAt",
]
HOLD = ["id", "iri", "expires_at", "total_incl_tax", "offer"]
PAYMENT = ["provider", "event_id", "payment_id", "amount_minor", "currency", "received_at"]
LEASE = ["task_id", "owner", "started_at", "lease_until"]
# The operator sees the record as stored (ids, IRIs, payment ids, claim owners, the
# callback URL, document URLs), never a person: no customer, no beneficiaries, items as
# offer and quantity, Korus's failed items as their top-level scalars.
OPERATOR_RECORD = [
    "id", "external_reference", "merchant", "state", "version", "created_at", "updated_at",
    "callback_url", "language", "policy",
    "reservations", *(f"reservations[].{f}" for f in HOLD),
    "failed_reservations", "failed_reservations[].offer", "failed_reservations[].quantity",
    "failed_reservations[].code", "failed_reservations[].message",
    "released_reservations", *(f"released_reservations[].{f}" for f in HOLD),
    "total_incl_tax", "currency", "reserve_attempts", "rescue",
    "payment", *(f"payment.{f}" for f in PAYMENT),
    "pending_payment", *(f"pending_payment.{f}" for f in PAYMENT),
    "extra_payments", *(f"extra_payments[].{f}" for f in PAYMENT),
    "order_attempt", "order_attempt.number", "order_attempt.task_id",
    "order_attempt.started_at", "order_attempt.lease_until", "order_attempt.sent",
    "order_attempt.refused", "order_attempt.owner",
    "order_attempts",
    "orders", "orders[].id", "orders[].iri", "orders[].reference", "orders[].reservation",
    "orders[].total_incl_tax", "orders[].tickets",
    *(f"orders[].tickets[].{f}" for f in (
        "id", "iri", "item_id", "ticket", "voucher", "status", "required_beneficiary_fields",
        "seating", "occurs_at")),
    "orders[].document_ids",
    "failed_orders", "failed_orders[].reservation", "failed_orders[].code",
    "failed_orders[].message",
    "order_unresolved_since",
    "documents", "documents[].order_id", "documents[].document_id",
    "documents[].downloadable_at", "documents[].temporary_url", "documents[].url_expires_at",
    "documents[].cached_language",
    "beneficiaries_sent", "documents_missing_since",
    "claim", "claim.step", "claim.number", *(f"claim.{f}" for f in LEASE),
    "step_failures", "unexpected_failures", "retry_at", "reason", "alerts",
    "items", "items[].offer", "items[].quantity",
]
OPERATOR_SUMMARY = [
    "id", "state", "externalReference", "totalAmountInclTax", "currency", "expiresAt",
    "updatedAt",
]


def outputs(booking: Booking) -> dict[str, Any]:
    """Each audience's JSON value of `booking`."""
    return {
        "merchant view": dump(merchant_view(booking, TIMELINE)),
        "merchant page": dump(BookingPage(items=[merchant_summary(booking)], next_cursor="c")),
        "callback": callback_body(booking, "booking.completed", 1_900_000_000).json_value(),
        "operator record": dump(operator_record(booking)),
        "operator summary": dump(operator_summary(booking)),
    }


def test_each_audience_gets_exactly_its_listed_fields() -> None:
    shown = outputs(rich_booking())

    assert fields(shown["merchant view"]) == MERCHANT_VIEW
    assert fields(shown["merchant page"]) == [
        "items", *(f"items[].{f}" for f in MERCHANT_SUMMARY), "nextCursor"
    ]
    assert fields(shown["callback"]) == CALLBACK
    assert fields(shown["operator record"]) == OPERATOR_RECORD
    assert fields(shown["operator summary"]) == OPERATOR_SUMMARY


@pytest.mark.parametrize(
    "audience",
    ["merchant view", "merchant page", "callback", "operator record", "operator summary"],
)
def test_no_personal_value_leaves_in_any_output(audience: str) -> None:
    booking = rich_booking()
    stored = booking.model_dump_json()
    assert all(value in stored for value in PERSONAL)  # the fixture does hold them all

    leaked = {v for s in strings(outputs(booking)[audience]) for v in PERSONAL if v in s}

    assert leaked == set()


def test_every_record_field_is_shown_to_the_operator_or_withheld_by_name() -> None:
    withheld = {"customer", "beneficiaries"}

    assert set(OperatorRecord.model_fields) == set(Booking.model_fields) - withheld


def test_the_callback_leaves_out_parts_the_booking_does_not_have_yet() -> None:
    fresh = booking_in(State.RECEIVED)

    data = callback_body(fresh, "booking.reserved", 1).json_value()["data"]
    view = dump(merchant_summary(fresh))

    assert list(data) == [
        "id", "externalReference", "state", "reason", "totalAmountInclTax", "currency",
        "expiresAt",
    ]
    assert data["reason"] is None and data["expiresAt"] is None
    assert (view["payment"], view["orders"], view["documents"]) == (None, [], [])


def test_each_audience_keeps_its_time_and_amount_formats() -> None:
    booking = booking_in(State.AWAITING_PAYMENT, hold_total=Decimal("0.00"))
    expires = booking.reservations[0].expires_at

    merchant = dump(merchant_summary(booking))
    callback = callback_body(booking, "booking.reserved", 1).json_value()["data"]
    summary = dump(operator_summary(booking))
    record = dump(operator_record(booking))

    assert merchant["expiresAt"] == expires.isoformat().replace("+00:00", "Z")
    assert callback["expiresAt"] == expires.isoformat()
    assert summary["expiresAt"] == str(expires)
    assert record["reservations"][0]["expires_at"] == merchant["expiresAt"]
    # A zero total: "0.00" for the merchant API and the record, null in the callback and
    # the operator listing (as they have always written it).
    assert (merchant["totalAmountInclTax"], record["total_incl_tax"]) == ("0.00", "0.00")
    assert callback["totalAmountInclTax"] is None and summary["totalAmountInclTax"] is None
