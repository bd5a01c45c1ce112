"""Read-side Korus routes: catalogs, offers, tickets, sessions, availability, price, forms.

Everything is rendered from the immutable seeded catalog plus the live inventory (read
under the state lock after lapsed holds are released, so availability is exact).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from korus_sandbox.catalog import Catalog, Form, Offer, Session, Ticket
from korus_sandbox.context import SandboxContext
from korus_sandbox.errors import ApiError
from korus_sandbox.httpkit import Request, Response, Route, json_response
from korus_sandbox.ids import excl_tax, genid, iso, money
from korus_sandbox.paging import collection


def _catalog(ctx: SandboxContext, req: Request) -> Catalog:
    catalog = ctx.state.catalog
    if req.params.get("c") != catalog.id:
        raise ApiError(404, "Not Found")
    return catalog


def _offer(ctx: SandboxContext, req: Request) -> Offer:
    catalog = _catalog(ctx, req)
    offer = catalog.offer(f"{catalog.iri}/offers/{req.params['o']}")
    if offer is None:
        raise ApiError(404, "Not Found")
    return offer


def _ticket(ctx: SandboxContext, req: Request) -> tuple[Offer, Ticket]:
    offer = _offer(ctx, req)
    ticket = next((t for t in offer.tickets if t.id == req.params["t"]), None)
    if ticket is None:
        raise ApiError(404, "Not Found")
    return offer, ticket


def _stock(ctx: SandboxContext) -> tuple[dict[str, int], dict[str, int]]:
    """A snapshot of the live inventory (offers, sessions)."""
    with ctx.state.settled() as state:
        return dict(state.offer_stock), dict(state.session_stock)


def _ticket_view(ticket: Ticket) -> dict[str, Any]:
    return {
        "@id": ticket.iri,
        "@type": "Ticket",
        "id": ticket.id,
        "name": ticket.name,
        "dateAccess": ticket.date_access,
        "form": ticket.form.iri if ticket.form else None,
    }


def _session_view(session: Session, available: int) -> dict[str, Any]:
    return {
        "@id": session.iri,
        "@type": "Session",
        "id": session.id,
        "startsAt": iso(session.starts_at),
        "endsAt": iso(session.ends_at),
        "availableQuantity": available,
    }


def _offer_view(catalog: Catalog, offer: Offer, available: int) -> dict[str, Any]:
    price = money(offer.price)
    return {
        "@id": offer.iri,
        "@type": "Offer",
        "id": offer.id,
        "catalog": catalog.iri,
        "date": iso(offer.date),
        "availabilityCheckRequired": offer.availability_check_required,
        "realtimePriceRequired": False,
        "price": {
            "@id": genid(),
            "@type": "Price",
            "amountInclTax": price,
            "originalAmountInclTax": price,
            "currency": "eur",
        },
        "product": {
            "@id": genid(),
            "@type": "Product",
            "id": offer.product.id,
            "name": offer.product.name,
            "description": offer.product.description,
        },
        "tickets": [_ticket_view(ticket) for ticket in offer.tickets],
        "availableQuantity": available,
    }


def _parse_date(req: Request, name: str) -> float | None:
    raw = req.query_value(name)
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError:
        raise ApiError(400, f'The "{name}" filter must be an ISO-8601 date.') from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def list_catalogs(ctx: SandboxContext, req: Request) -> Response:
    catalog = ctx.state.catalog
    member = {
        "@id": catalog.iri,
        "@type": "Catalog",
        "id": catalog.id,
        "name": catalog.name,
        "createdAt": iso(catalog.created_at),
    }
    return json_response(200, collection(req, "Catalog", [member]))


def list_offers(ctx: SandboxContext, req: Request) -> Response:
    catalog = _catalog(ctx, req)
    after, before = _parse_date(req, "date[after]"), _parse_date(req, "date[before]")
    products = set(req.query.get("product[]", []) + req.query.get("product", []))
    session = req.query_value("session")
    offers_stock, _ = _stock(ctx)
    members = []
    for offer in catalog.offers:
        if after is not None and offer.date < after:
            continue
        if before is not None and offer.date > before:
            continue
        if products and not products & {offer.product.id, offer.product.name}:
            continue
        if session is not None and not any(
            session in (s.iri, s.id) for t in offer.tickets for s in t.sessions
        ):
            continue
        members.append(_offer_view(catalog, offer, offers_stock[offer.id]))
    return json_response(200, collection(req, "Offer", members))


def get_offer(ctx: SandboxContext, req: Request) -> Response:
    offer = _offer(ctx, req)
    offers_stock, _ = _stock(ctx)
    view = _offer_view(ctx.state.catalog, offer, offers_stock[offer.id])
    return json_response(200, {"@context": "/contexts/Offer", **view})


def list_tickets(ctx: SandboxContext, req: Request) -> Response:
    offer = _offer(ctx, req)
    return json_response(200, collection(req, "Ticket", [_ticket_view(t) for t in offer.tickets]))


def get_ticket(ctx: SandboxContext, req: Request) -> Response:
    _, ticket = _ticket(ctx, req)
    return json_response(200, {"@context": "/contexts/Ticket", **_ticket_view(ticket)})


def list_sessions(ctx: SandboxContext, req: Request) -> Response:
    _, ticket = _ticket(ctx, req)
    _, sessions_stock = _stock(ctx)
    members = [_session_view(s, sessions_stock[s.id]) for s in ticket.sessions]
    return json_response(200, collection(req, "Session", members))


def availability(ctx: SandboxContext, req: Request) -> Response:
    offer = _offer(ctx, req)
    offers_stock, sessions_stock = _stock(ctx)
    return json_response(
        200,
        {
            "@context": "/contexts/OfferAvailability",
            "@id": f"{offer.iri}/availability",
            "@type": "OfferAvailability",
            "availableQuantity": offers_stock[offer.id],
            "sessionsAvailability": [
                {"@id": genid(), "session": s.iri, "availableQuantity": sessions_stock[s.id]}
                for t in offer.tickets
                for s in t.sessions
            ],
        },
    )


def price(ctx: SandboxContext, req: Request) -> Response:
    offer = _offer(ctx, req)
    return json_response(
        200,
        {
            "@context": "/contexts/OfferPrice",
            "@id": f"{offer.iri}/price",
            "@type": "OfferPrice",
            "amountInclTax": money(offer.price),
            "amountExclTax": money(excl_tax(offer.price)),
            "currency": "eur",
        },
    )


def form_view(form: Form) -> dict[str, Any]:
    return {
        "@id": form.iri,
        "@type": "Form",
        "id": form.id,
        "name": form.name,
        "fields": [
            {
                "@id": f.iri,
                "@type": "FormField",
                "id": f.id,
                "field": f.iri,
                "label": f.label,
                "required": f.required,
                "type": "text",
            }
            for f in form.fields
        ],
    }


def get_form(ctx: SandboxContext, req: Request) -> Response:
    form = ctx.state.catalog.form(req.params["id"])
    if form is None:
        raise ApiError(404, "Not Found")
    return json_response(200, {"@context": "/contexts/Form", **form_view(form)})


_OFFER = "/v1/ticketing/catalogs/{c}/offers/{o}"
ROUTES = [
    Route("GET", "/v1/ticketing/catalogs", list_catalogs),
    Route("GET", "/v1/ticketing/catalogs/{c}/offers", list_offers),
    Route("GET", _OFFER, get_offer),
    Route("GET", f"{_OFFER}/tickets", list_tickets),
    Route("GET", f"{_OFFER}/tickets/{{t}}", get_ticket),
    Route("GET", f"{_OFFER}/tickets/{{t}}/sessions", list_sessions),
    Route("GET", f"{_OFFER}/availability", availability),
    Route("GET", f"{_OFFER}/price", price),
    Route("GET", "/v1/forms/{id}", get_form),
]
