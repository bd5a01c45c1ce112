"""`POST /v1/booking/reservations/_bulk`: parse, check consistency, hold, render.

Guarantees:
- The whole call is checked before anything is held (unknown IRI, missing or foreign
  session, ticketSessions not matching quantity x tickets-of-the-offer in ticket order
  (the sandbox rule for bundles, korus-api.md), quantity above availability counted over
  the whole call, missing form data): any problem is one 422 listing every violation,
  and nothing is held.
- The check and the holds run under the state lock in one critical section, so two
  concurrent calls can never oversell an offer, a session or a seat.
- Each item becomes its own reservation (its own id and expiry); an item whose
  sub-system fails becomes a failed item `{"offer", "quantity", "code", "message"}` and
  holds nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from korus_sandbox import validation as v
from korus_sandbox.booking_views import bulk_context, render_reservation
from korus_sandbox.catalog import Offer, Session, Ticket
from korus_sandbox.errors import (
    INVALID_IRI_CODE,
    INVALID_VALUE_CODE,
    NOT_BLANK_CODE,
    NOT_ENOUGH_AVAILABILITY_CODE,
    QUANTITY_MISMATCH_CODE,
    Violation,
    ViolationsError,
)
from korus_sandbox.ids import genid, uuid7
from korus_sandbox.state import HeldTicket, Reservation, SandboxState

SUBSYSTEM_ERROR_CODE = "subsystem_error"


@dataclass(frozen=True)
class RequestedTicket:
    path: str
    ticket: str | None
    session: str | None
    form_data: dict[str, Any] | None


@dataclass(frozen=True)
class RequestedItem:
    path: str
    offer: str | None
    quantity: int | None
    tickets: tuple[RequestedTicket, ...]


def parse_request(body: object) -> list[RequestedItem]:
    """The items of a reservation call. 400 on a wrong JSON type, 422 on missing values."""
    data = v.require_object(body, "")
    violations: list[Violation] = []
    raw_items = data.get("items")
    if raw_items is None:
        raise ViolationsError([v.not_blank("items")])
    raw_items = v.require_list(raw_items, "items")
    if not raw_items:
        raise ViolationsError(
            [
                Violation(
                    "items", "This collection should contain 1 element or more.", INVALID_VALUE_CODE
                )
            ]
        )
    items = []
    for index, raw_item in enumerate(raw_items):
        path = f"items[{index}]"
        item = v.require_object(raw_item, path)
        offer = v.required_str(item, "offer", f"{path}.offer", violations)
        quantity = v.required_int(item, "quantity", f"{path}.quantity", violations)
        raw_sessions = item.get("ticketSessions")
        if raw_sessions is None:
            violations.append(v.not_blank(f"{path}.ticketSessions"))
            raw_sessions = []
        tickets = []
        for position, raw in enumerate(v.require_list(raw_sessions, f"{path}.ticketSessions")):
            ticket_path = f"{path}.ticketSessions[{position}]"
            entry = v.require_object(raw, ticket_path)
            form_data = entry.get("formData")
            if form_data is not None:
                form_data = v.require_object(form_data, f"{ticket_path}.formData")
            tickets.append(
                RequestedTicket(
                    ticket_path,
                    v.required_str(entry, "ticket", f"{ticket_path}.ticket", violations),
                    v.optional_str(entry, "session", f"{ticket_path}.session"),
                    form_data,
                )
            )
        items.append(RequestedItem(path, offer, quantity, tuple(tickets)))
    if violations:
        raise ViolationsError(violations)
    return items


def reserve(state: SandboxState, items: list[RequestedItem], now: float) -> dict[str, Any]:
    """Check the whole call, then hold each item. Takes the state lock itself."""
    with state.settled(now):
        resolved = _check(state, items)
        reservations: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for item, (offer, held) in zip(items, resolved, strict=True):
            if offer.spec.subsystem_fails:
                failed.append(
                    {
                        "offer": offer.iri,
                        "quantity": item.quantity,
                        "code": SUBSYSTEM_ERROR_CODE,
                        "message": "The ticketing sub-system of this offer did not answer.",
                    }
                )
                continue
            for entry in held:
                if entry.ticket.seated:
                    entry.seat = state.take_seat(offer)
            reservation = Reservation(uuid7(), offer, held, now, now + state.config.hold_seconds)
            state.add_reservation(reservation)
            reservations.append(render_reservation(state, reservation))
    return {
        "@context": bulk_context(
            "CreateReservationBulkOutput", "reservations", "failedReservations"
        ),
        "@type": "CreateReservationBulkOutput",
        "@id": genid(),
        "reservations": reservations,
        "failedReservations": failed,
    }


def _check(state: SandboxState, items: list[RequestedItem]) -> list[tuple[Offer, list[HeldTicket]]]:
    """Resolve every IRI and check availability over the whole call, or raise 422."""
    catalog = state.catalog
    violations: list[Violation] = []
    resolved: list[tuple[Offer, list[HeldTicket]]] = []
    offer_demand: Counter[str] = Counter()
    session_demand: Counter[str] = Counter()
    for item in items:
        offer = catalog.offer(item.offer or "")
        if offer is None:
            violations.append(_not_found(f"{item.path}.offer", item.offer or ""))
            continue
        per_unit = len(offer.tickets)
        if item.quantity is not None and item.quantity * per_unit != len(item.tickets):
            violations.append(
                Violation(
                    f"{item.path}.quantity",
                    "ticketSessions must hold one entry per ticket of the offer for each unit "
                    f"(quantity x {per_unit}).",
                    QUANTITY_MISMATCH_CODE,
                )
            )
        if item.quantity is not None and item.quantity < 1:
            violations.append(
                Violation(
                    f"{item.path}.quantity", "This value should be positive.", INVALID_VALUE_CODE
                )
            )
            continue
        held: list[HeldTicket] = []
        for position, requested in enumerate(item.tickets):
            entry = _check_ticket(state, offer, requested, violations, position % per_unit)
            if entry is not None:
                held.append(entry)
                if entry.session is not None:
                    session_id = entry.session.id
                    session_demand[session_id] += 1
                    if session_demand[session_id] == state.session_stock[session_id] + 1:
                        violations.append(_unavailable(f"{requested.path}.session"))
        offer_demand[offer.id] += max(0, item.quantity or 0)
        if offer_demand[offer.id] > state.offer_stock[offer.id]:
            violations.append(_unavailable(f"{item.path}.quantity"))
        resolved.append((offer, held))
    if violations:
        raise ViolationsError(violations)
    return resolved


def _check_ticket(
    state: SandboxState,
    offer: Offer,
    requested: RequestedTicket,
    violations: list[Violation],
    slot: int,
) -> HeldTicket | None:
    """`slot`: which ticket of the offer this entry stands for (entries follow ticket
    order within each unit)."""
    found = state.catalog.ticket(requested.ticket or "")
    if found is None or found[0] is not offer:
        violations.append(_not_found(f"{requested.path}.ticket", requested.ticket or ""))
        return None
    ticket = found[1]
    if ticket is not offer.tickets[slot]:
        violations.append(
            Violation(
                f"{requested.path}.ticket",
                f"Expected ticket {offer.tickets[slot].iri} here (one entry per ticket of the "
                "offer, in ticket order, for each unit).",
                QUANTITY_MISMATCH_CODE,
            )
        )
        return None
    session = _check_session(state, ticket, requested, violations)
    form_values = _check_form(ticket, requested, violations)
    if form_values is None or (session is None and not ticket.date_access):
        return None
    return HeldTicket(ticket, session, None, form_values)


def _check_session(
    state: SandboxState, ticket: Ticket, requested: RequestedTicket, violations: list[Violation]
) -> Session | None:
    path = f"{requested.path}.session"
    if ticket.date_access:
        if requested.session is not None:
            violations.append(
                Violation(
                    path, "This ticket gives date access: no session to choose.", INVALID_VALUE_CODE
                )
            )
        return None
    if requested.session is None:
        violations.append(v.not_blank(path))
        return None
    found = state.catalog.session(requested.session)
    if found is None or found[1] is not ticket:
        violations.append(_not_found(path, requested.session))
        return None
    return found[2]


def _check_form(
    ticket: Ticket, requested: RequestedTicket, violations: list[Violation]
) -> dict[str, str] | None:
    """The field values given (IRI → value); None (and violations) when the form fails."""
    path = f"{requested.path}.formData"
    form = ticket.form
    data = requested.form_data
    if form is None:
        return {}
    if data is None:
        violations.append(v.not_blank(path))
        return None
    form_iri = v.optional_str(data, "form", f"{path}.form")
    if form_iri != form.iri:
        violations.append(_not_found(f"{path}.form", form_iri or ""))
        return None
    values: dict[str, str] = {}
    for index, raw in enumerate(v.require_list(data.get("fields", []), f"{path}.fields")):
        entry = v.require_object(raw, f"{path}.fields[{index}]")
        field_iri = v.optional_str(entry, "field", f"{path}.fields[{index}].field") or ""
        value = v.optional_str(entry, "value", f"{path}.fields[{index}].value") or ""
        if all(known.iri != field_iri for known in form.fields):
            violations.append(_not_found(f"{path}.fields[{index}].field", field_iri))
            return None
        values[field_iri] = value
    missing = [f for f in form.fields if f.required and not values.get(f.iri, "").strip()]
    for form_field in missing:
        violations.append(
            Violation(
                f"{path}.fields", f'The field "{form_field.label}" is required.', NOT_BLANK_CODE
            )
        )
    return None if missing else values


def _not_found(path: str, iri: str) -> Violation:
    return Violation(path, f'Item not found for "{iri}".', INVALID_IRI_CODE)


def _unavailable(path: str) -> Violation:
    return Violation(
        path, "Not enough availability for this quantity.", NOT_ENOUGH_AVAILABILITY_CODE
    )
