"""`POST /v1/booking/orders/_bulk`: one order per reservation, never two.

Guarantees:
- Body problems: wrong JSON type → 400; missing customer name/email, bad email, missing
  or over-long (> 255) externalReference, empty reservation list → 422.
- Under the state lock, in one critical section: every listed reservation is checked
  (unknown or foreign IRI, listed twice, already ordered, lapsed →
  `reservations[i].expired` with Korus' documented message and code), and only if all
  pass is one order created per reservation. So two racing calls cannot both order.
- What Korus answers to a second order of a reservation is NOT documented. The sandbox's
  own rule refuses it with a 422 whose violation is marked as such
  (`reservations[i].sandboxAlreadyOrdered`, code `sandbox-rule:already-ordered`, message
  starting "[sandbox rule]"); the worker gives it no meaning (it reconciles every 422).
- The answer has the documented shape: inline `@context`, `"customer": []`, order items
  and tickets as blank nodes, documents as IRIs (see booking_views.render_order).
- An order is immediately `confirmed`; its reservation's `order` names it and the hold
  no longer lapses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from korus_sandbox import validation as v
from korus_sandbox.booking_views import bulk_context, render_order
from korus_sandbox.catalog import BENEFICIARY_FIELDS
from korus_sandbox.errors import (
    INVALID_IRI_CODE,
    INVALID_VALUE_CODE,
    RESERVATION_EXPIRED_CODE,
    RESERVATION_EXPIRED_MESSAGE,
    SANDBOX_ALREADY_ORDERED_CODE,
    TOO_LONG_CODE,
    Violation,
    ViolationsError,
)
from korus_sandbox.ids import genid, random_digits, random_hex, uuid7
from korus_sandbox.state import (
    Document,
    Order,
    OrderItem,
    OrderTicket,
    Reservation,
    SandboxState,
)

_RESERVATION_IRI = re.compile(r"/v1/booking/reservations/([0-9a-f-]{36})")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CUSTOMER_OPTIONAL = ("phone", "country", "language", "title")
_OPENING_HOUR = 9 * 3600  # a date-access ticket "occurs" when the park opens
_DAY = 86_400


@dataclass(frozen=True)
class OrderRequest:
    reservations: tuple[str, ...]
    customer: dict[str, Any]
    external_reference: str


def parse_request(body: object) -> OrderRequest:
    """The order call's content. 400 on a wrong JSON type, 422 on missing/invalid values."""
    data = v.require_object(body, "")
    violations: list[Violation] = []
    raw_reservations = data.get("reservations")
    reservations: list[str] = []
    if raw_reservations is None:
        violations.append(v.not_blank("reservations"))
    else:
        for index, iri in enumerate(v.require_list(raw_reservations, "reservations")):
            if not isinstance(iri, str):
                raise v.wrong_type(f"reservations[{index}]", "string", iri)
            reservations.append(iri)
        if not reservations:
            violations.append(
                Violation(
                    "reservations",
                    "This collection should contain 1 element or more.",
                    INVALID_VALUE_CODE,
                )
            )
    customer = _parse_customer(data.get("customer"), violations)
    reference = v.required_str(data, "externalReference", "externalReference", violations)
    if reference is not None and len(reference) > 255:
        violations.append(
            Violation(
                "externalReference",
                "This value is too long. It should have 255 characters or less.",
                TOO_LONG_CODE,
            )
        )
    if violations:
        raise ViolationsError(violations)
    assert reference is not None
    return OrderRequest(tuple(reservations), customer, reference)


def _parse_customer(raw: object, violations: list[Violation]) -> dict[str, Any]:
    if raw is None:
        violations.append(v.not_blank("customer"))
        return {}
    data = v.require_object(raw, "customer")
    customer: dict[str, Any] = {}
    for name in ("firstname", "lastname", "email"):
        value = v.required_str(data, name, f"customer.{name}", violations)
        if value is not None:
            customer[name] = value
    email = customer.get("email")
    if email is not None and not _EMAIL.fullmatch(email):
        violations.append(
            Violation(
                "customer.email", "This value is not a valid email address.", INVALID_VALUE_CODE
            )
        )
    for name in _CUSTOMER_OPTIONAL:
        value = v.optional_str(data, name, f"customer.{name}")
        if value is not None:
            customer[name] = value
    optin = v.optional_bool(data, "optin", "customer.optin")
    if optin is not None:
        customer["optin"] = optin
    return customer


def place_orders(state: SandboxState, request: OrderRequest, now: float) -> dict[str, Any]:
    """Check every reservation, then order each one. Takes the state lock itself."""
    with state.settled(now):
        targets = _orderable(state, request.reservations)
        orders = [_new_order(state, reservation, request, now) for reservation in targets]
        for order in orders:
            state.add_order(order)
        # The documented answer has no `failedOrders` key when nothing failed.
        return {
            "@context": bulk_context("CreateOrderBulkOutput", "orders"),
            "@type": "CreateOrderBulkOutput",
            "@id": genid(),
            "orders": [render_order(state, order, full=False) for order in orders],
        }


def _orderable(state: SandboxState, iris: tuple[str, ...]) -> list[Reservation]:
    violations: list[Violation] = []
    targets: list[Reservation] = []
    seen: set[str] = set()
    for index, iri in enumerate(iris):
        path = f"reservations[{index}]"
        match = _RESERVATION_IRI.fullmatch(iri)
        reservation = state.reservations.get(match.group(1)) if match else None
        if reservation is None:
            violations.append(Violation(path, f'Item not found for "{iri}".', INVALID_IRI_CODE))
        elif reservation.id in seen:
            violations.append(
                Violation(path, "This reservation is listed twice.", INVALID_VALUE_CODE)
            )
        elif reservation.order_id is not None:
            violations.append(
                Violation(
                    f"{path}.sandboxAlreadyOrdered",
                    "[sandbox rule] This reservation is already ordered (Korus documents "
                    "no answer for this case).",
                    SANDBOX_ALREADY_ORDERED_CODE,
                )
            )
        elif reservation.expired:
            violations.append(
                Violation(f"{path}.expired", RESERVATION_EXPIRED_MESSAGE, RESERVATION_EXPIRED_CODE)
            )
        else:
            targets.append(reservation)
        if reservation is not None:
            seen.add(reservation.id)
    if violations:
        raise ViolationsError(violations)
    return targets


def _new_order(
    state: SandboxState, reservation: Reservation, request: OrderRequest, now: float
) -> Order:
    offer = reservation.offer
    order_id = uuid7()
    order_iri = f"/v1/booking/orders/{order_id}"
    item_id = uuid7()
    item_iri = f"{order_iri}/items/{item_id}"
    named = offer.spec.beneficiary
    tickets = []
    for held in reservation.held:
        ticket_id = uuid7()
        occurs_at = held.session.starts_at if held.session else offer.date + _OPENING_HOUR
        tickets.append(
            OrderTicket(
                id=ticket_id,
                iri=f"{item_iri}/tickets/{ticket_id}",
                held=held,
                voucher=f"SBX{random_digits(13)}",
                occurs_at=occurs_at,
                required_fields=BENEFICIARY_FIELDS if named else (),
                beneficiary=None,
                deadline=occurs_at - _DAY if named else None,
                amendable=named,
            )
        )
    ready_at = now + state.config.documents_delay_seconds if offer.spec.late_documents else now
    documents = []
    for ticket in tickets:
        document_id = uuid7()
        documents.append(
            Document(document_id, f"{order_iri}/documents/{document_id}", ticket, ready_at)
        )
    return Order(
        id=order_id,
        reference=_unique_reference(state),
        external_reference=request.external_reference,
        connector_reference=f"SBX-{random_hex(10)}",
        created_at=now,
        reservation=reservation,
        customer=dict(request.customer),
        items=[OrderItem(item_id, item_iri, offer, tickets)],
        documents=documents,
    )


def _unique_reference(state: SandboxState) -> str:
    while True:
        reference = f"KT-ORD-{random_hex(13)}"
        if reference not in state.references:
            return reference
