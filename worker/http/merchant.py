"""The merchant API (`/v1/bookings...`): start, read, list, cancel, refresh documents.

Every handler needs a valid merchant key (auth.MerchantAuthMiddleware) and answers JSON;
errors are problem documents (problems.py). None of them calls Korus: they read Redis and
put messages on the broker (BookingService).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any

import falcon
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.booking.callback_transport import TargetPolicy, TargetRefusedError, parse_target
from worker.booking.record import Booking
from worker.booking.requests import BookingRequest
from worker.booking.service import (
    BookingConflictError,
    BookingNotFoundError,
    BookingService,
    IdempotencyConflictError,
    IdempotencyKeyInProgressError,
    parse_cursor,
)
from worker.booking.states import State
from worker.booking.views import BookingPage, dump, merchant_summary, merchant_view
from worker.http.auth import owns
from worker.http.body import parse_json, read_body, require_json
from worker.http.problems import (
    IDEMPOTENCY_CONFLICT,
    IDEMPOTENCY_IN_PROGRESS,
    INVALID_STATE,
    NOT_FOUND,
    VALIDATION,
    ApiProblem,
    FieldError,
    validation_problem,
)

# `Prefer: wait=N` is honoured up to this many seconds (the connection's greenlet waits).
MAX_WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.05
_WAIT_PREFERENCE = re.compile(r"(?:^|[,;\s])wait\s*=\s*\"?([0-9]{1,6})\"?(?:$|[,;\s])", re.I)
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_BOOKING_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# States of the reservation step: once a booking has left them, `wait` stops.
_RESERVING = frozenset({State.RECEIVED, State.RESERVING})


def _not_found(booking_id: str) -> ApiProblem:
    return ApiProblem(404, type=NOT_FOUND, title="Booking not found", detail=booking_id)


def _conflict(error: Exception) -> ApiProblem:
    return ApiProblem(409, type=INVALID_STATE, title="Not allowed in this state", detail=str(error))


def _invalid(field: str, message: str) -> ApiProblem:
    return ApiProblem(
        422,
        type=VALIDATION,
        title="Invalid request",
        detail="1 invalid field(s)",
        errors=[FieldError(field=field, message=message)],
    )


def requested_wait(prefer: str | None) -> float:
    """Seconds asked by `Prefer: wait=N` (RFC 7240), capped; 0 when absent or unparsable."""
    match = _WAIT_PREFERENCE.search(prefer or "")
    return min(float(match.group(1)), MAX_WAIT_SECONDS) if match else 0.0


def encode_cursor(state: State, position: str) -> str:
    raw = json.dumps([state.value, position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, state: State) -> str:
    """The service's position after which the next page starts; 422 if not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_state, position = json.loads(raw)
        parse_cursor(str(position))
    except (binascii.Error, ValueError, TypeError, UnicodeError, RecursionError):
        raise _invalid("cursor", "not a cursor returned by this API") from None
    if cursor_state != state.value:
        raise _invalid("cursor", "the cursor belongs to another listing")
    return str(position)


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    state: State
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


class _MerchantResource:
    requires_merchant = True

    def __init__(self, service: BookingService) -> None:
        self.service = service

    @staticmethod
    def _check_id(booking_id: str) -> None:
        if not _BOOKING_ID.match(booking_id):
            raise _not_found(booking_id)

    def _load(self, req: falcon.Request, booking_id: str) -> Booking:
        """The caller's booking; 404 when unknown or another merchant's."""
        self._check_id(booking_id)
        try:
            booking = self.service.get(booking_id)
        except BookingNotFoundError:
            raise _not_found(booking_id) from None
        if not owns(req.context.merchant, booking.merchant):
            raise _not_found(booking_id)
        return booking

    def _view(self, booking: Booking) -> dict[str, Any]:
        return dump(merchant_view(booking, self.service.store.timeline(booking.id)))


class BookingsCollection(_MerchantResource):
    def __init__(self, service: BookingService, callback_policy: TargetPolicy | None = None
                 ) -> None:
        super().__init__(service)
        self.callback_policy = callback_policy or TargetPolicy()

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Start a booking: 202 (reservation enqueued), 201 (reservation step finished
        within `Prefer: wait=N`), 200 (Idempotency-Key replay: the first request's
        booking). Nothing is written when the body is invalid (400/415/422)."""
        body = read_body(req)
        require_json(req)
        data = parse_json(body)
        key = req.get_header("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            raise _invalid("Idempotency-Key", "1 to 255 visible ASCII characters")
        try:
            request = BookingRequest.model_validate(data)
        except ValidationError as error:
            raise validation_problem(error) from None
        if request.callback_url is not None:
            try:  # syntax and literal addresses here; names are resolved at send time
                parse_target(request.callback_url, self.callback_policy)
            except TargetRefusedError as refused:
                raise _invalid("callbackUrl", str(refused)) from None
        try:
            result = self.service.start_booking(
                request, merchant=req.context.merchant, idempotency_key=key
            )
        except IdempotencyConflictError as error:
            raise ApiProblem(
                422, type=IDEMPOTENCY_CONFLICT, title="Idempotency-Key reused", detail=str(error)
            ) from None
        except IdempotencyKeyInProgressError as error:
            raise ApiProblem(
                409,
                type=IDEMPOTENCY_IN_PROGRESS,
                title="Request in progress",
                detail=str(error),
                headers={"Retry-After": "1"},
            ) from None
        booking = result.booking
        status = 200 if not result.created else 202
        wait = requested_wait(req.get_header("Prefer"))
        if result.created and wait > 0:
            resp.set_header("Preference-Applied", f"wait={wait:g}")
            booking = self._wait_reserved(booking, wait)
            if booking.state not in _RESERVING:
                status = 201
        resp.status = status
        resp.location = f"/v1/bookings/{booking.id}"
        resp.media = self._view(booking)

    def _wait_reserved(self, booking: Booking, seconds: float) -> Booking:
        """Poll the record until the reservation step is over or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while booking.state in _RESERVING and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
            booking = self.service.store.load(booking.id) or booking
        return booking

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """A page of bookings in `state`, oldest first; `nextCursor` null on the last."""
        try:
            query = ListQuery.model_validate(req.params)
        except ValidationError as error:
            raise validation_problem(error) from None
        after = decode_cursor(query.cursor, query.state) if query.cursor else None
        bookings, position = self.service.list(query.state, cursor=after, limit=query.limit)
        # A page holds the caller's bookings only (it may be shorter than `limit`; the
        # cursor still walks the whole index).
        merchant = req.context.merchant
        page = BookingPage(
            items=[merchant_summary(b) for b in bookings if owns(merchant, b.merchant)],
            next_cursor=None if position is None else encode_cursor(query.state, position),
        )
        resp.media = dump(page)


class BookingItem(_MerchantResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        """The booking with its timeline; 404 if unknown (or expired from retention)."""
        resp.media = self._view(self._load(req, booking_id))


class BookingCancel(_MerchantResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        """Cancel before payment: 200 with the cancelled booking (also when it already
        was), 409 once paid or otherwise past cancelling, 404 if unknown."""
        self._load(req, booking_id)  # 404 unless it is the caller's
        try:
            booking = self.service.cancel(booking_id)
        except BookingNotFoundError:
            raise _not_found(booking_id) from None
        except BookingConflictError as error:
            raise _conflict(error) from None
        resp.media = self._view(booking)


class BookingDocumentsRefresh(_MerchantResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        """Ask for new temporary document URLs: 202 (the fetch is enqueued; GET the
        booking for the new URLs), 409 unless the booking is completed, 404 if unknown."""
        self._load(req, booking_id)  # 404 unless it is the caller's
        try:
            booking = self.service.refresh_documents(booking_id)
        except BookingNotFoundError:
            raise _not_found(booking_id) from None
        except BookingConflictError as error:
            raise _conflict(error) from None
        resp.status = 202
        resp.media = self._view(booking)
