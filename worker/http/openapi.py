"""`GET /openapi.json`: the OpenAPI 3.1 document of this front, built from its own models.

Request and response schemas come from the same pydantic models the handlers validate
and serialise with (`model_json_schema` via `models_json_schema`), so the spec cannot
drift from the code. tests/http checks that every served route is listed here and fuzzes
the API against this document.
"""

from __future__ import annotations

import json
from typing import Any

import falcon
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from worker.booking.requests import BookingRequest
from worker.booking.states import State
from worker.booking.views import BookingPage, BookingView
from worker.http.health import HealthStatus
from worker.http.merchant import MAX_WAIT_SECONDS
from worker.http.payment_events import PaymentsEvent, StripeEvent
from worker.http.problems import Problem
from worker.http.webhooks import WebhookAck

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (BookingRequest, "validation"),
    (BookingView, "serialization"),
    (BookingPage, "serialization"),
    (Problem, "serialization"),
    (WebhookAck, "serialization"),
    (StripeEvent, "validation"),
    (PaymentsEvent, "validation"),
    (HealthStatus, "serialization"),
]

_DESCRIPTIONS = {
    200: "OK",
    201: "Created, and the reservation step has finished (see `state`)",
    202: "Accepted: the work is enqueued",
    400: "Malformed request (JSON, signature, headers, an unreadable or truncated body)",
    401: "Missing or invalid merchant API key",
    404: "Not found",
    409: "Conflict with the booking's state",
    408: "The body did not arrive within 10 seconds (in all)",
    413: "Body larger than 256 KiB",
    415: "Content-Type is not application/json",
    422: "Invalid input; `errors` names each field by its JSON path",
    500: "Unexpected error (logged; no detail is given)",
    503: "A backend is unavailable, or the event is being handled: retry (Retry-After)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(ok: dict[int, str], problems: list[int]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, schema in ok.items():
        responses[str(status)] = {
            "description": _DESCRIPTIONS[status],
            "content": {"application/json": {"schema": _ref(schema)}},
        }
    for status in [*problems, 500]:
        responses[str(status)] = {
            "description": _DESCRIPTIONS[status],
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
    return responses


def _header(name: str, description: str, *, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


_BOOKING_ID = {
    "name": "booking_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}
_MERCHANT: list[dict[str, list[str]]] = [{"merchantKey": []}]
_OPEN: list[dict[str, list[str]]] = []


def _paths() -> dict[str, Any]:
    merchant = [401, 503]
    webhook_errors = [400, 408, 413, 503]
    return {
        "/v1/bookings": {
            "post": {
                "operationId": "startBooking",
                "summary": "Start a booking (reservation enqueued)",
                "security": _MERCHANT,
                "parameters": [
                    _header("Idempotency-Key", "Same key and body: the same booking (200)."),
                    _header(
                        "Prefer",
                        f"`wait=N` (RFC 7240): wait up to N s (max {MAX_WAIT_SECONDS:g}) for "
                        "the reservation; 201 if it finished in time.",
                    ),
                ],
                "requestBody": _body("BookingRequest"),
                "responses": _responses(
                    {200: "BookingView", 201: "BookingView", 202: "BookingView"},
                    [400, 408, 409, 413, 415, 422, *merchant],
                ),
            },
            "get": {
                "operationId": "listBookings",
                "summary": "Bookings in one state, oldest first, by pages",
                "security": _MERCHANT,
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": [s.value for s in State]},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                ],
                "responses": _responses({200: "BookingPage"}, [422, *merchant]),
            },
        },
        "/v1/bookings/{booking_id}": {
            "get": {
                "operationId": "getBooking",
                "summary": "A booking with its timeline",
                "security": _MERCHANT,
                "parameters": [_BOOKING_ID],
                "responses": _responses({200: "BookingView"}, [404, *merchant]),
            }
        },
        "/v1/bookings/{booking_id}/cancel": {
            "post": {
                "operationId": "cancelBooking",
                "summary": "Cancel before payment (idempotent)",
                "security": _MERCHANT,
                "parameters": [_BOOKING_ID],
                "responses": _responses({200: "BookingView"}, [404, 409, *merchant]),
            }
        },
        "/v1/bookings/{booking_id}/documents/refresh": {
            "post": {
                "operationId": "refreshDocuments",
                "summary": "New temporary document URLs for a completed booking",
                "security": _MERCHANT,
                "parameters": [_BOOKING_ID],
                "responses": _responses({202: "BookingView"}, [404, 409, *merchant]),
            }
        },
        "/webhooks/stripe": {
            "post": {
                "operationId": "stripeWebhook",
                "summary": "Stripe payment events (Stripe-Signature, 300 s tolerance)",
                "security": _OPEN,
                "parameters": [_header("Stripe-Signature", "t=...,v1=...", required=True)],
                "requestBody": _body("StripeEvent"),
                "responses": _responses({200: "WebhookAck"}, webhook_errors),
            }
        },
        "/webhooks/payments": {
            "post": {
                "operationId": "paymentsWebhook",
                "summary": "Provider-neutral payment events (Standard Webhooks)",
                "security": _OPEN,
                "parameters": [
                    _header("webhook-id", "Event id (deduplication key).", required=True),
                    _header("webhook-timestamp", "Unix seconds.", required=True),
                    _header("webhook-signature", "v1,<base64> [v1,<base64>...]", required=True),
                ],
                "requestBody": _body("PaymentsEvent"),
                "responses": _responses({200: "WebhookAck"}, webhook_errors),
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "security": _OPEN,
                "responses": _responses({200: "HealthStatus"}, []),
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "security": _OPEN,
                "responses": _responses({200: "HealthStatus"}, [503]),
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "security": _OPEN,
                "description": "With `Authorization: Bearer <METRICS_TOKEN>`; 404 otherwise "
                "(or served on METRICS_PORT only).",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_responses({}, [404]),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": _OPEN,
                "responses": {
                    "200": {
                        "description": "This document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def build_document() -> dict[str, Any]:
    _, definitions = models_json_schema(
        _MODELS, by_alias=True, ref_template="#/components/schemas/{model}"
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "booking-worker HTTP front",
            "version": "1",
            "description": "Merchant API and payment webhooks of the Korus booking worker. "
            "Errors are RFC 9457 problem documents.",
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": _paths(),
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "merchantKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A key of MERCHANT_API_KEYS.",
                }
            },
        },
    }


class OpenApiResource:
    def __init__(self) -> None:
        self._document = json.dumps(build_document()).encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The document, computed once per process."""
        resp.data = self._document
        resp.content_type = falcon.MEDIA_JSON
