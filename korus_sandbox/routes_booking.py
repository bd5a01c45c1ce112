"""Write-side Korus routes: reservations, orders, beneficiaries, documents.

Handlers only translate HTTP to the domain functions of `reservations.py`, `orders.py`
and `documents.py`, which hold the state lock for each whole check-and-change.
"""

from __future__ import annotations

import time

from korus_sandbox import documents, orders, reservations
from korus_sandbox.booking_views import render_order, render_reservation
from korus_sandbox.context import SandboxContext
from korus_sandbox.errors import INVALID_VALUE_CODE, ApiError, Violation, ViolationsError
from korus_sandbox.httpkit import MERGE_PATCH, Request, Response, Route, json_response
from korus_sandbox.paging import collection
from korus_sandbox.state import Order, Reservation

_JSON_TYPES = ("application/ld+json", "application/json", MERGE_PATCH)


def _body(req: Request, *, patch: bool = False) -> object:
    """The JSON body; 415 for a media type Korus would refuse, 400 for bad JSON."""
    media = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    if patch and media != MERGE_PATCH:
        raise ApiError(
            415,
            f'The content-type "{media}" is not supported. '
            f'Supported MIME types are "{MERGE_PATCH}".',
        )
    if not patch and media and media not in _JSON_TYPES:
        raise ApiError(
            415,
            f'The content-type "{media}" is not supported. '
            'Supported MIME types are "application/ld+json", '
            '"application/json".',
        )
    return req.json()


def reserve_bulk(ctx: SandboxContext, req: Request) -> Response:
    items = reservations.parse_request(_body(req))
    return json_response(201, reservations.reserve(ctx.state, items, time.time()))


def get_reservation(ctx: SandboxContext, req: Request) -> Response:
    with ctx.state.settled() as state:
        reservation = state.reservations.get(req.params["id"])
        if reservation is None:
            raise ApiError(404, "Not Found")
        view = render_reservation(state, reservation, full=True)
    return json_response(200, {"@context": "/contexts/BookingReservation", **view})


def list_reservations(ctx: SandboxContext, req: Request) -> Response:
    state = ctx.state

    def render(reservation: Reservation) -> dict[str, object]:
        return render_reservation(state, reservation, full=True)

    with state.settled():
        page = collection(req, "BookingReservation", list(state.reservations.values()), render)
    return json_response(200, page)


def order_bulk(ctx: SandboxContext, req: Request) -> Response:
    request = orders.parse_request(_body(req))
    return json_response(200, orders.place_orders(ctx.state, request, time.time()))


def list_orders(ctx: SandboxContext, req: Request) -> Response:
    state = ctx.state
    reference = req.query_value("external_reference")
    if reference is not None and not 1 <= len(reference) <= 50:
        raise ViolationsError(
            [
                Violation(
                    "external_reference",
                    "This value should have between 1 and 50 characters.",
                    INVALID_VALUE_CODE,
                )
            ]
        )
    with state.lock:
        found: list[Order] = (
            list(state.orders.values())
            if reference is None
            else list(state.orders_by_reference.get(reference, []))
        )
        listed_before = time.time() - state.config.orders_listing_lag_seconds
        found = [order for order in found if order.created_at <= listed_before]
        page = collection(req, "BookingOrder", found, lambda order: render_order(state, order))
    return json_response(200, page)


def get_order(ctx: SandboxContext, req: Request) -> Response:
    with ctx.state.lock:
        order = ctx.state.orders.get(req.params["id"])
        if order is None:
            raise ApiError(404, "Not Found")
        view = render_order(ctx.state, order)
    return json_response(200, {"@context": "/contexts/BookingOrder", **view})


def patch_ticket(ctx: SandboxContext, req: Request) -> Response:
    body = _body(req, patch=True)
    ids = (req.params["o"], req.params["i"], req.params["t"])
    view = documents.patch_beneficiary(ctx.state, ids, body)
    return json_response(200, {"@context": "/contexts/BookingOrderTicket", **view})


def list_documents(ctx: SandboxContext, req: Request) -> Response:
    members = documents.list_documents(ctx.state, req.params["o"])
    page = collection(req, "BookingOrderDocument", members)
    page["@type"] = "hydra:Collection"  # as the documented listing names it
    return json_response(200, page)


def get_document(ctx: SandboxContext, req: Request) -> Response:
    view = documents.get_document(ctx.state, req.params["o"], req.params["d"])
    return json_response(200, {"@context": "/contexts/BookingOrderDocument", **view})


def patch_document(ctx: SandboxContext, req: Request) -> Response:
    documents_body = _body(req, patch=True)
    if not isinstance(documents_body, dict):
        raise ApiError(400, 'The type of the "body" attribute must be "object".')
    host = req.header("Host")
    base_url = f"http://{host}" if host else ctx.base_url
    view = documents.document_link(
        ctx.state,
        ctx.signer,
        (req.params["o"], req.params["d"]),
        base_url,
        req.header("Accept-Language"),
        time.time(),
    )
    return json_response(200, {"@context": "/contexts/BookingOrderDocument", **view})


_ORDER = "/v1/booking/orders/{o}"
ROUTES = [
    Route("POST", "/v1/booking/reservations/_bulk", reserve_bulk),
    Route("GET", "/v1/booking/reservations", list_reservations),
    Route("GET", "/v1/booking/reservations/{id}", get_reservation),
    Route("POST", "/v1/booking/orders/_bulk", order_bulk),
    Route("GET", "/v1/booking/orders", list_orders),
    Route("GET", "/v1/booking/orders/{id}", get_order),
    Route("PATCH", f"{_ORDER}/items/{{i}}/tickets/{{t}}", patch_ticket),
    Route("GET", f"{_ORDER}/documents", list_documents),
    Route("GET", f"{_ORDER}/documents/{{d}}", get_document),
    Route("PATCH", f"{_ORDER}/documents/{{d}}", patch_document),
]
