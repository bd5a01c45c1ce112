"""RFC 9457 problem documents: every error the HTTP front answers has this shape.

`ApiProblem` is raised by handlers; Falcon's own errors (404 route, 405 method, bad
headers) are converted to the same shape; anything else becomes a logged 500 whose body
says nothing about the failure (no stack trace, no exception text ever reaches a caller).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import falcon
import redis
from kombu.exceptions import OperationalError
from pydantic import BaseModel, Field, ValidationError

from worker.booking.store import ConcurrentUpdateError

log = logging.getLogger("booking.http")

PROBLEM_JSON = "application/problem+json"

# Problem types: relative URIs (RFC 9457 §3.1.1 allows them), documented in openapi.json.
VALIDATION = "/problems/validation-error"
MALFORMED_JSON = "/problems/malformed-json"
UNSUPPORTED_MEDIA = "/problems/unsupported-media-type"
TOO_LARGE = "/problems/payload-too-large"
UNREADABLE_BODY = "/problems/unreadable-body"
BODY_TIMEOUT = "/problems/body-timeout"
UNAUTHORIZED = "/problems/unauthorized"
NOT_FOUND = "/problems/not-found"
INVALID_STATE = "/problems/invalid-state"
IDEMPOTENCY_CONFLICT = "/problems/idempotency-conflict"
IDEMPOTENCY_IN_PROGRESS = "/problems/idempotency-in-progress"
BAD_SIGNATURE = "/problems/bad-signature"
MALFORMED_EVENT = "/problems/malformed-event"
UNAVAILABLE = "/problems/service-unavailable"
NOT_READY = "/problems/not-ready"

# Seconds a client should wait after a 503 caused by Redis or the broker being down.
UNAVAILABLE_RETRY_AFTER = 5

# The backend is briefly unreachable or contended: answered 503 so a client retries.
UNAVAILABLE_ERRORS = (redis.RedisError, OperationalError, ConcurrentUpdateError)


class FieldError(BaseModel):
    """One invalid input: `field` is the JSON path by the names the client sent."""

    field: str = Field(examples=["items[0].ticketSessions"])
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str = Field(default="about:blank", description="URI reference naming the kind.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="Field errors of a 422 (or of a 400 for a bad query)."
    )
    checks: dict[str, str] | None = Field(
        default=None, description="Readiness checks and their results (/readyz only)."
    )


class ApiProblem(Exception):
    """Raise to answer with a problem document; `headers` go on the response."""

    def __init__(
        self,
        status: int,
        *,
        type: str = "about:blank",
        title: str | None = None,
        detail: str | None = None,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        checks: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title or str(status))
        self.problem = Problem(
            type=type,
            title=title or HTTPStatus(status).phrase,
            status=status,
            detail=detail,
            errors=errors,
            checks=checks,
        )
        self.headers = dict(headers or {})


def json_path(loc: Iterable[int | str]) -> str:
    """`("items", 0, "ticketSessions")` → `items[0].ticketSessions`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(body)"


def validation_problem(error: ValidationError) -> ApiProblem:
    """A 422 naming each invalid field by its JSON alias path, never echoing input."""
    errors = [
        FieldError(field=json_path(item["loc"]), message=item["msg"])
        for item in error.errors(include_input=False, include_url=False)
    ]
    return ApiProblem(
        422,
        type=VALIDATION,
        title="Invalid request",
        detail=f"{len(errors)} invalid field(s)",
        errors=errors,
    )


def render(resp: falcon.Response, problem: Problem, headers: Mapping[str, str]) -> None:
    resp.status = problem.status
    resp.content_type = PROBLEM_JSON
    resp.text = json.dumps(problem.model_dump(exclude_none=True))
    for name, value in headers.items():
        resp.set_header(name, value)


def handle_api_problem(
    req: falcon.Request, resp: falcon.Response, error: ApiProblem, params: dict[str, Any]
) -> None:
    render(resp, error.problem, error.headers)


def handle_http_error(
    req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError, params: dict[str, Any]
) -> None:
    """Falcon's own errors (unknown route, wrong method, invalid header) as problems."""
    status = int(error.status_code)
    problem_type = "about:blank"
    if status == 404:
        problem_type = NOT_FOUND
    problem = Problem(
        type=problem_type,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=error.description,
    )
    render(resp, problem, dict(error.headers or {}))


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """The catch-all: log the stack trace here, answer a bare 500 to the caller."""
    log.exception("unhandled error on %s %s", req.method, req.uri_template or req.path)
    problem = Problem(
        title="Internal Server Error", status=500, detail="The error was logged; try again."
    )
    render(resp, problem, {})


def install(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """Register the handlers; Falcon picks the most specific one for an exception."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(ApiProblem, handle_api_problem)


def handle_unavailable(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """Redis or the broker is down (or a record is under contention): 503, retry later.

    A provider retries a 503 webhook later, which is the point: nothing was acknowledged
    that is not durably on the broker.
    """
    log.warning(
        "backend unavailable on %s %s: %s",
        req.method,
        req.uri_template or req.path,
        type(error).__name__,
    )
    problem = Problem(
        type=UNAVAILABLE,
        title="Service unavailable",
        status=503,
        detail="a backend (Redis or the message broker) is unavailable; retry later",
    )
    render(resp, problem, {"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})
