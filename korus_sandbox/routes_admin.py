"""Admin routes under `/_sandbox/` (no auth, never faulted, not counted except files).

reset, inspection (orders, reservations, catalog, calls), faults (GET/PUT/DELETE),
runtime config (GET/POST), and the signed document files behind `temporaryUrl`.
"""

from __future__ import annotations

import time
from typing import Any

from korus_sandbox.context import SandboxContext
from korus_sandbox.documents import signed_pdf
from korus_sandbox.errors import ApiError
from korus_sandbox.faults import FaultRule
from korus_sandbox.httpkit import JSON, Request, Response, Route, json_response
from korus_sandbox.ids import iso

_CONFIG_KEYS = {
    "hold_seconds": 0.0,  # the value must be greater than this
    "token_lifetime_seconds": 0.0,
    "document_url_lifetime_seconds": 0.0,
    "documents_delay_seconds": -1.0,
    "orders_listing_lag_seconds": -1.0,
    "documents_listing_lag_seconds": -1.0,
}


def _ok(payload: object) -> Response:
    return json_response(200, payload, JSON)


def _object_body(req: Request) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return body


def reset(ctx: SandboxContext, req: Request) -> Response:
    with ctx.state.lock:
        ctx.state.reset()
    ctx.faults.clear()
    return _ok({"reset": True})


def orders(ctx: SandboxContext, req: Request) -> Response:
    with ctx.state.settled() as state:
        listed = [
            {
                "id": o.id,
                "reference": o.reference,
                "externalReference": o.external_reference,
                "reservation": o.reservation.iri,
                "createdAt": iso(o.created_at),
                "status": "confirmed",
                "product": o.reservation.offer.product.name,
            }
            for o in state.orders.values()
        ]
    return _ok({"orders": listed})


def reservations(ctx: SandboxContext, req: Request) -> Response:
    with ctx.state.settled() as state:
        listed = [
            {
                "id": r.id,
                "offer": r.offer.iri,
                "product": r.offer.product.name,
                "quantity": r.quantity,
                "status": r.status,
                "expired": r.expired,
                "expiresAt": iso(r.expires_at),
                "order": f"/v1/booking/orders/{r.order_id}" if r.order_id else None,
            }
            for r in state.reservations.values()
        ]
    return _ok({"reservations": listed})


def catalog(ctx: SandboxContext, req: Request) -> Response:
    listed: dict[str, dict[str, Any]] = {}
    for offer in ctx.state.catalog.offers:
        entry: dict[str, Any] = {
            "offer": offer.iri,
            "tickets": [t.iri for t in offer.tickets],
            "sessions": [s.iri for t in offer.tickets for s in t.sessions],
            # Per ticket of the offer, in ticket order: what one unit's ticketSessions
            # entries need (a bundle offer has several).
            "offerTickets": [
                {
                    "ticket": t.iri,
                    "name": t.name,
                    "sessions": [s.iri for s in t.sessions],
                    "form": t.form.iri if t.form is not None else None,
                    "formFields": [f.iri for f in t.form.fields] if t.form is not None else [],
                }
                for t in offer.tickets
            ],
            "price": str(offer.price),
            "inventory": offer.inventory,
        }
        forms = [t.form for t in offer.tickets if t.form is not None]
        if forms:
            entry["form"] = forms[0].iri
            entry["form_fields"] = [f.iri for f in forms[0].fields]
        listed[offer.product.name] = entry
    return _ok(listed)


def calls(ctx: SandboxContext, req: Request) -> Response:
    return _ok(ctx.state.calls())


def get_faults(ctx: SandboxContext, req: Request) -> Response:
    return _ok({"faults": ctx.faults.rules()})


def put_faults(ctx: SandboxContext, req: Request) -> Response:
    try:
        rule = FaultRule.from_mapping(_object_body(req))
        ctx.faults.set(rule)
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    return _ok({"faults": ctx.faults.rules()})


def delete_faults(ctx: SandboxContext, req: Request) -> Response:
    ctx.faults.clear()
    return _ok({"faults": []})


def get_config(ctx: SandboxContext, req: Request) -> Response:
    with ctx.state.lock:
        return _ok(ctx.state.config.public())


def post_config(ctx: SandboxContext, req: Request) -> Response:
    body = _object_body(req)
    unknown = set(body) - set(_CONFIG_KEYS)
    if unknown:
        raise ApiError(400, f"unknown settings: {', '.join(sorted(unknown))}")
    for key, value in body.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ApiError(400, f'"{key}" must be a number')
        if not value > _CONFIG_KEYS[key] or value > 10**9:
            raise ApiError(400, f'"{key}" is out of range')
    with ctx.state.lock:
        for key, value in body.items():
            setattr(ctx.state.config, key, float(value))
        return _ok(ctx.state.config.public())


def file(ctx: SandboxContext, req: Request) -> Response:
    pdf = signed_pdf(ctx.state, ctx.signer, req.params["name"], req.query, time.time())
    return Response(200, pdf, "application/pdf", {"Cache-Control": "private, max-age=60"})


ROUTES = [
    Route("POST", "/_sandbox/reset", reset, auth=False, korus=False, counted=False),
    Route("GET", "/_sandbox/orders", orders, auth=False, korus=False, counted=False),
    Route("GET", "/_sandbox/reservations", reservations, auth=False, korus=False, counted=False),
    Route("GET", "/_sandbox/catalog", catalog, auth=False, korus=False, counted=False),
    Route("GET", "/_sandbox/calls", calls, auth=False, korus=False, counted=False),
    Route("GET", "/_sandbox/faults", get_faults, auth=False, korus=False, counted=False),
    Route("PUT", "/_sandbox/faults", put_faults, auth=False, korus=False, counted=False),
    Route("DELETE", "/_sandbox/faults", delete_faults, auth=False, korus=False, counted=False),
    Route("GET", "/_sandbox/config", get_config, auth=False, korus=False, counted=False),
    Route("POST", "/_sandbox/config", post_config, auth=False, korus=False, counted=False),
    Route("GET", "/_sandbox/files/{name}", file, auth=False, korus=False),
]
