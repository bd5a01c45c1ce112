"""JSON-LD views of reservations, orders, order tickets and documents.

Pure functions of the state objects; callers hold the state lock so a view is a
consistent snapshot. Views omit `@context`: routes answering a single resource add it,
collection members go without, as Korus does.
"""

from __future__ import annotations

from typing import Any

from worker.sandbox.catalog import ORGANIZATION_NAME, Offer
from worker.sandbox.ids import excl_tax, genid, iso, money
from worker.sandbox.state import Document, Order, OrderTicket, Reservation, SandboxState


def product_view(offer: Offer) -> dict[str, Any]:
    return {"@id": genid(), "@type": "Product", "id": offer.product.id, "name": offer.product.name}


def render_reservation(state: SandboxState, reservation: Reservation) -> dict[str, Any]:
    """A BookingReservation."""
    offer = reservation.offer
    unit = offer.price
    order = state.orders.get(reservation.order_id) if reservation.order_id else None
    return {
        "@id": reservation.iri,
        "@type": "BookingReservation",
        "id": reservation.id,
        "expired": reservation.expired,
        "createdAt": iso(reservation.created_at),
        "expiresAt": iso(reservation.expires_at),
        "totalAmountInclTax": money(unit * reservation.quantity),
        "totalAmountExclTax": money(excl_tax(unit) * reservation.quantity),
        "items": [
            {
                "@id": genid(),
                "@type": "BookingReservationItem",
                "quantity": reservation.quantity,
                "unitAmountInclTax": money(unit),
                "unitAmountExclTax": money(excl_tax(unit)),
                "offer": offer.iri,
                "product": product_view(offer),
                "offerTickets": [
                    {
                        "@id": genid(),
                        "@type": "BookingReservationOfferTicket",
                        "ticket": held.ticket.iri,
                        "session": held.session.iri if held.session else None,
                        "seating": seating(held.seat),
                    }
                    for held in reservation.held
                ],
            }
        ],
        "organization": {
            "@id": genid(),
            "@type": "Organization",
            "id": state.catalog.organization_id,
            "name": ORGANIZATION_NAME,
        },
        "catalog": state.catalog.iri,
        "order": order.iri if order is not None else None,
        "status": reservation.status,
        "releasable": reservation.order_id is None and not reservation.expired,
    }


def seating(seat: int | None) -> dict[str, Any] | None:
    """The seat of a seated ticket (Limited Concert), None for the others."""
    if seat is None:
        return None
    return {
        "@id": genid(),
        "@type": "Seating",
        "seatNumber": str(seat),
        "row": chr(ord("A") + (seat - 1) // 20),
        "level": "1",
        "stand": "Main",
        "stair": "2",
        "gate": "B",
    }


def render_order(order: Order) -> dict[str, Any]:
    """A BookingOrder."""
    offer = order.reservation.offer
    quantity = order.reservation.quantity
    return {
        "@id": order.iri,
        "@type": "BookingOrder",
        "id": order.id,
        "createdAt": iso(order.created_at),
        "reference": order.reference,
        "externalReference": order.external_reference,
        "connectorReference": order.connector_reference,
        "totalAmountInclTax": money(offer.price * quantity),
        "totalAmountExclTax": money(excl_tax(offer.price) * quantity),
        "reservation": order.reservation.iri,
        "customer": {"@id": genid(), "@type": "Customer", **order.customer},
        "status": "confirmed",
        "items": [
            {
                "@id": item.iri,
                "@type": "BookingOrderItem",
                "id": item.id,
                "offer": item.offer.iri,
                "product": product_view(item.offer),
                "quantity": len(item.tickets),
                "unitAmountInclTax": money(item.offer.price),
                "unitAmountExclTax": money(excl_tax(item.offer.price)),
                "tickets": [render_order_ticket(ticket) for ticket in item.tickets],
            }
            for item in order.items
        ],
        "documents": [document.iri for document in order.documents],
    }


def render_order_ticket(ticket: OrderTicket) -> dict[str, Any]:
    """A BookingOrderTicket (what the beneficiary PATCH answers, with `@context`)."""
    beneficiary = (
        {"@id": genid(), "@type": "Beneficiary", **ticket.beneficiary}
        if ticket.beneficiary is not None
        else None
    )
    return {
        "@id": ticket.iri,
        "@type": "BookingOrderTicket",
        "id": ticket.id,
        "ticket": ticket.held.ticket.iri,
        "session": ticket.held.session.iri if ticket.held.session else None,
        "voucher": ticket.voucher,
        "occursAt": iso(ticket.occurs_at),
        "status": ticket.status,
        "requiredBeneficiaryFields": list(ticket.required_fields),
        "beneficiary": beneficiary,
        "beneficiaryDesignationDeadline": (
            iso(ticket.deadline) if ticket.deadline is not None else None
        ),
        "beneficiaryAmendable": ticket.amendable,
        "seating": seating(ticket.held.seat),
    }


def render_document(document: Document) -> dict[str, Any]:
    """A member of `GET /v1/booking/orders/{o}/documents`."""
    return {
        "@id": document.iri,
        "@type": "BookingOrderDocument",
        "id": document.id,
        "downloadableAt": iso(document.downloadable_at),
        "ticket": document.ticket.iri,
    }
