"""JSON-LD views of reservations, orders, order tickets and documents.

Pure functions of the state objects; callers hold the state lock so a view is a
consistent snapshot. Views omit `@context`: routes answering a single resource add it
(`/contexts/<Type>`; the `_bulk` answers an inline object, see `bulk_context`),
collection members go without, as Korus does. By default every view has the keys,
nesting and JSON types of the documented examples (`korus-examples/`, checked by
tests/sandbox/test_documented_shapes.py); `shapes.py` varies them on demand.
"""

from __future__ import annotations

from typing import Any

from korus_sandbox.catalog import Offer
from korus_sandbox.ids import excl_tax, genid, iso, money
from korus_sandbox.state import (
    Document,
    HeldTicket,
    Order,
    OrderTicket,
    Reservation,
    SandboxState,
)


def product_iri(state: SandboxState, offer: Offer) -> str:
    return f"{state.catalog.iri}/products/{offer.product.id}"


def organization_iri(state: SandboxState) -> str:
    return f"/v1/ticketing/organizations/{state.catalog.organization_id}"


def bulk_context(type_name: str, *members: str) -> dict[str, str]:
    """The inline `@context` object of a `_bulk` answer, as Korus documents it."""
    return {
        "@vocab": "https://api.demo.korusticket.com/docs.jsonld#",
        "hydra": "http://www.w3.org/ns/hydra/core#",
        **{member: f"{type_name}/{member}" for member in members},
    }


def render_reservation(
    state: SandboxState, reservation: Reservation, *, full: bool = False
) -> dict[str, Any]:
    """A BookingReservation with exactly the keys of the documented `_bulk` answer;
    `full` (the GET routes) adds the documented `status`, `releasable`, `catalog` and
    each offer ticket's `seating`."""
    offer = reservation.offer
    unit = offer.price
    order = state.orders.get(reservation.order_id) if reservation.order_id else None
    view: dict[str, Any] = {
        "@id": reservation.iri,
        "@type": "BookingReservation",
        "expired": reservation.expired,
        "id": reservation.id,
        "createdAt": iso(reservation.created_at),
        "totalAmountInclTax": money(unit * reservation.quantity),
        "totalAmountExclTax": money(excl_tax(unit) * reservation.quantity),
        "expiresAt": iso(reservation.expires_at),
        "items": [
            {
                "@type": "ReservationItem",
                "@id": genid(),
                "unitAmountInclTax": money(unit),
                "unitAmountExclTax": money(excl_tax(unit)),
                "offer": offer.iri,
                "product": product_iri(state, offer),
                "offerTickets": [_offer_ticket(held, full) for held in reservation.held],
            }
        ],
        "organization": organization_iri(state),
        "order": order.iri if order is not None else None,
    }
    if full:
        view["catalog"] = state.catalog.iri
        view["status"] = reservation.status
        view["releasable"] = reservation.order_id is None and not reservation.expired
    return view


def _offer_ticket(held: HeldTicket, full: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "@type": "ReservationItemOfferTicket",
        "@id": genid(),
        "ticket": held.ticket.iri,
    }
    if held.session is not None:  # the documented answer omits `session` when there is none
        entry["session"] = held.session.iri
    if full:  # documented in korus-api.md, absent from the `_bulk` example
        entry["seating"] = seating(held.seat)
    return entry


def seating(seat: int | None) -> dict[str, Any] | None:
    """The seat of a seated ticket, None for the others."""
    if seat is None:
        return None
    return {
        "@type": "TicketSeating",
        "@id": genid(),
        "seatNumber": str(seat),
        "level": "1",
        "row": chr(ord("A") + (seat - 1) // 20),
        "stand": "Main",
        "stair": "2",
        "gate": "B",
    }


def render_order(state: SandboxState, order: Order, *, full: bool = True) -> dict[str, Any]:
    """A BookingOrder. Without `full` (the `_bulk` answer) it has exactly the documented
    keys: `"customer": []`, order items and tickets with blank-node `@id`s and no `id`.
    With `full` (GET order, the listing) items and tickets carry their real IRIs and
    ids, which a beneficiary PATCH needs, plus `status` and `connectorReference`."""
    offer = order.reservation.offer
    quantity = order.reservation.quantity
    view: dict[str, Any] = {
        "@id": order.iri,
        "@type": "BookingOrder",
        "id": order.id,
        "createdAt": iso(order.created_at),
        "organization": f"/v1/organizations/{state.catalog.organization_id}",
        "reference": order.reference,
        "externalReference": order.external_reference,
        "totalAmountInclTax": money(offer.price * quantity),
        "totalAmountExclTax": money(excl_tax(offer.price) * quantity),
        "reservation": order.reservation.iri,
        # The documented answer: an empty JSON-LD object serialised as an array. The
        # sandbox never echoes the customer's personal data.
        "customer": [],
        "items": [
            {
                "@type": "OrderItem",
                "@id": item.iri if full else genid(),
                **({"id": item.id} if full else {}),
                "unitAmountInclTax": money(item.offer.price),
                "unitAmountExclTax": money(excl_tax(item.offer.price)),
                "product": product_iri(state, item.offer),
                "tickets": [render_order_ticket(ticket, full=full) for ticket in item.tickets],
            }
            for item in order.items
        ],
        "documents": [document.iri for document in order.documents],
    }
    if full:
        view["status"] = "confirmed"
        view["connectorReference"] = order.connector_reference
    return view


def render_order_ticket(ticket: OrderTicket, *, full: bool = True) -> dict[str, Any]:
    """An order ticket. `occursAt` is null for a date-access ticket, as documented."""
    beneficiary = (
        {"@id": genid(), "@type": "Beneficiary", **ticket.beneficiary}
        if ticket.beneficiary is not None
        else None
    )
    view: dict[str, Any] = {
        "@type": "ReservationItemOfferTicket",
        "@id": ticket.iri if full else genid(),
    }
    if full:
        view["id"] = ticket.id
    view.update(
        {
            "ticket": ticket.held.ticket.iri,
            "voucher": ticket.voucher,
            "occursAt": iso(ticket.occurs_at) if ticket.held.session is not None else None,
            "requiredBeneficiaryFields": list(ticket.required_fields),
            "beneficiary": beneficiary,
            "beneficiaryDesignationDeadline": (
                iso(ticket.deadline) if ticket.deadline is not None else None
            ),
            "beneficiaryAmendable": ticket.amendable,
            "status": ticket.status,
            "seating": seating(ticket.held.seat),
        }
    )
    return view


def render_document(document: Document) -> dict[str, Any]:
    """A member of `GET /v1/booking/orders/{o}/documents` (and `GET .../documents/{d}`)."""
    return {
        "@id": document.iri,
        "@type": "BookingOrderDocument",
        "id": document.id,
        "downloadableAt": iso(document.downloadable_at),
    }
