"""`KorusClient`: one method per Korus call the worker makes.

The client never retries (except the single token refresh on a 401, in the transport):
it raises an error of `worker.korus.errors` and the Celery task decides. Methods accept a
resource id or its IRI wherever convenient. Request bodies are the typed models of
`worker.korus.models` (the booking's own models are turned into them by
`worker.booking.korus_mapping`). Booking calls take an optional `language` (the booking's),
sent as Accept-Language.

An answer that does not fit its model raises `KorusUnreadableAnswerError` (a transient
kind, so it is retried with backoff) after a log line and an alert naming the call and
the failing field paths, never the values (they may be a customer's data).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from pydantic import BaseModel, ValidationError

from worker.alerts import alert
from worker.korus.auth import CACHE_KEY, TokenProvider, token_provider
from worker.korus.errors import KorusUnreadableAnswerError, KorusUnreadableWriteError
from worker.korus.iris import path_segment as _seg
from worker.korus.iris import reservation_iri
from worker.korus.models import (
    Availability,
    Beneficiary,
    BulkOrderResult,
    BulkReservationResult,
    Catalog,
    Customer,
    DocumentRef,
    DocumentUrl,
    Form,
    KorusModel,
    Offer,
    Order,
    OrderTicket,
    Price,
    Reservation,
    ReservationRequestItem,
    Session,
    Ticket,
)
from worker.korus.pages import Page, iter_pages
from worker.korus.stats import RedisCallStats
from worker.korus.transport import Query, Transport, TransportOptions
from worker.observability.logs import current_booking_id

if TYPE_CHECKING:
    import redis

    from worker.settings import Settings

log = logging.getLogger("worker.korus")

M = TypeVar("M", bound=BaseModel)
K = TypeVar("K", bound=KorusModel)

MAX_EXTERNAL_REFERENCE = 50  # the orders listing filters on 1-50 characters
MAX_PAGES = 100  # 100 pages of 50: far above anything one booking or catalog produces


def _check_reference(external_reference: str) -> None:
    if not 1 <= len(external_reference) <= MAX_EXTERNAL_REFERENCE:
        raise ValueError(
            f"externalReference must be 1-{MAX_EXTERNAL_REFERENCE} characters, "
            f"got {len(external_reference)}"
        )


def _iso(value: dt.date | str) -> str:
    return value if isinstance(value, str) else value.isoformat()


class KorusClient:
    """The Korus Ticket API, typed. Thread-safe; share one per process."""

    def __init__(
        self, base_url: str, tokens: TokenProvider, **options: Unpack[TransportOptions]
    ) -> None:
        """`options`: those of `Transport` (language, timeouts, session, call observer)."""
        self.transport = Transport(base_url, tokens, **options)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        redis_client: redis.Redis,
        *,
        token_key: str = CACHE_KEY,
        record_calls: bool = True,
    ) -> KorusClient:
        """The configured client: a static token when KORUS_TOKEN is set, else one token
        shared through Redis under `token_key`; every call counted in the fleet's call
        statistics unless `record_calls` is false."""
        return cls(
            settings.korus_base_url,
            token_provider(settings, redis_client, key_prefix=token_key),
            language=settings.korus_language,
            connect_timeout=settings.korus_connect_timeout,
            read_timeout=settings.korus_read_timeout,
            observer=RedisCallStats(redis_client) if record_calls else None,
        )

    # -- plumbing -------------------------------------------------------------------

    def _get(
        self,
        model: type[M],
        path: str,
        params: Query | None = None,
        language: str | None = None,
    ) -> M:
        data = self.transport.request("GET", path, params=params, language=language)
        return parse_answer(model, data, "GET", path)

    def _write(
        self, model: type[M], method: str, path: str, body: Any, language: str | None = None
    ) -> M:
        data = self.transport.request(method, path, body=body, language=language)
        return parse_answer(model, data, method, path)

    def _all(
        self,
        model: type[K],
        path: str,
        params: Query | None = None,
        language: str | None = None,
    ) -> list[K]:
        query: Query = {"itemsPerPage": 50, **(params or {})}
        first = self._get(Page[model], path, query, language)  # type: ignore[valid-type]
        return list(
            iter_pages(
                first,
                lambda next_iri: self._get(Page[model], next_iri, None, language),  # type: ignore[valid-type]
                max_pages=MAX_PAGES,
            )
        )

    @staticmethod
    def _offer_path(catalog_id: str, offer_id: str) -> str:
        return f"/v1/ticketing/catalogs/{_seg(catalog_id)}/offers/{_seg(offer_id)}"

    # -- catalog (read only; every error is safe to retry or permanent) ------------------

    def list_catalogs(self) -> list[Catalog]:
        return self._all(Catalog, "/v1/ticketing/catalogs")

    def list_offers(
        self,
        catalog_id: str,
        *,
        date_after: dt.date | str | None = None,
        date_before: dt.date | str | None = None,
        products: Sequence[str] | None = None,
        session: str | None = None,
        page: int = 1,
        items_per_page: int = 50,
    ) -> Page[Offer]:
        """One page of offers; filters map to `date[after]`, `date[before]`, `product[]`."""
        params: dict[str, str | int | list[str]] = {"page": page, "itemsPerPage": items_per_page}
        if date_after is not None:
            params["date[after]"] = _iso(date_after)
        if date_before is not None:
            params["date[before]"] = _iso(date_before)
        if products:
            params["product[]"] = list(products)
        if session is not None:
            params["session"] = session
        path = f"/v1/ticketing/catalogs/{_seg(catalog_id)}/offers"
        return self._get(Page[Offer], path, params)

    def all_offers(self, catalog_id: str) -> list[Offer]:
        return self._all(Offer, f"/v1/ticketing/catalogs/{_seg(catalog_id)}/offers")

    def list_tickets(self, catalog_id: str, offer_id: str) -> list[Ticket]:
        return self._all(Ticket, f"{self._offer_path(catalog_id, offer_id)}/tickets")

    def get_ticket(self, catalog_id: str, offer_id: str, ticket_id: str) -> Ticket:
        path = f"{self._offer_path(catalog_id, offer_id)}/tickets/{_seg(ticket_id)}"
        return self._get(Ticket, path)

    def list_sessions(self, catalog_id: str, offer_id: str, ticket_id: str) -> list[Session]:
        ticket = _seg(ticket_id)
        return self._all(
            Session, f"{self._offer_path(catalog_id, offer_id)}/tickets/{ticket}/sessions"
        )

    def get_availability(self, catalog_id: str, offer_id: str) -> Availability:
        """Real-time availability (offers with `availabilityCheckRequired`)."""
        return self._get(Availability, f"{self._offer_path(catalog_id, offer_id)}/availability")

    def get_price(self, catalog_id: str, offer_id: str) -> Price:
        """Real-time price (offers with `realtimePriceRequired`)."""
        return self._get(Price, f"{self._offer_path(catalog_id, offer_id)}/price")

    def get_form(self, form_id: str) -> Form:
        return self._get(Form, f"/v1/forms/{_seg(form_id)}")

    # -- reservations ---------------------------------------------------------------

    def reserve(
        self,
        items: Iterable[ReservationRequestItem],
        *,
        language: str | None = None,
    ) -> BulkReservationResult:
        """POST reservations/_bulk: hold tickets. Some, all or none items may succeed:
        successes are `reservations` (each with its own `expiresAt`), failures `failed`
        (kept raw); all items failing is an answer (200 or 201), not an error.

        Errors:
        - KorusRejectedError (422): the consistency check refused the call; nothing held.
        - KorusNotSentError, or KorusTransientError with status 429: nothing held; safe
          to call again.
        - KorusOutcomeUnknownError: holds may exist. They lapse on their own at
          `expiresAt` (Korus has no release endpoint), so calling again may hold the
          inventory twice until then; it can never order anything.
        Raises ValueError, before sending, if `items` is empty.
        """
        body = {"items": [item.to_json_body() for item in items]}
        if not body["items"]:
            raise ValueError("at least one reservation item is needed")
        return self._write(
            BulkReservationResult, "POST", "/v1/booking/reservations/_bulk", body, language
        )

    def get_reservation(self, reservation_id: str) -> Reservation:
        return self._get(Reservation, reservation_iri(reservation_id))

    # -- orders ---------------------------------------------------------------------

    def create_orders(
        self,
        reservation_iris: Sequence[str],
        customer: Customer,
        external_reference: str,
        *,
        language: str | None = None,
    ) -> BulkOrderResult:
        """POST orders/_bulk: turn reservations into orders (one per reservation).

        Korus has no idempotency key; a reservation can be ordered once. Errors:
        - KorusOutcomeUnknownError (read timeout, dropped connection, 5xx): the orders MAY
          exist. Reconcile with `find_orders(external_reference)`; never call
          create_orders again blindly.
        - KorusRejectedError (422): only `.reservation_expired` is documented (nothing can
          be ordered). What Korus answers to a second order of a reservation is not
          documented: reconcile every 422 through find_orders before giving it up.
        - A 200 may list `failedOrders`: reconcile those too (the listing may lag).
        - KorusNotSentError, or KorusTransientError with status 429: nothing was ordered;
          safe to call again.
        Raises ValueError, before sending, if external_reference is not 1-50 characters.
        """
        _check_reference(external_reference)
        if not reservation_iris:
            raise ValueError("at least one reservation is needed")
        body = {
            "reservations": [reservation_iri(value) for value in reservation_iris],
            "customer": customer.to_json_body(),
            "externalReference": external_reference,
        }
        return self._write(BulkOrderResult, "POST", "/v1/booking/orders/_bulk", body, language)

    def find_orders(self, external_reference: str, *, language: str | None = None) -> list[Order]:
        """Every order made under `external_reference` (all pages): the reconciliation path.

        Raises KorusClientError rather than return a truncated listing (over 5,000 orders).
        """
        _check_reference(external_reference)
        params = {"external_reference": external_reference}
        return self._all(Order, "/v1/booking/orders", params, language)

    def get_order(self, order_id: str, *, language: str | None = None) -> Order:
        return self._get(Order, f"/v1/booking/orders/{_seg(order_id)}", None, language)

    def set_beneficiary(
        self,
        order_id: str,
        item_id: str,
        ticket_id: str,
        beneficiary: Beneficiary,
        *,
        language: str | None = None,
    ) -> OrderTicket:
        """PATCH an order ticket's beneficiary (merge-patch; same body twice is harmless).

        Errors: KorusRejectedError - the data was refused (see violations).
        KorusOutcomeUnknownError - it may have been saved; sending it again is safe.
        """
        path = (
            f"/v1/booking/orders/{_seg(order_id)}/items/{_seg(item_id)}/tickets/{_seg(ticket_id)}"
        )
        body = {"beneficiary": beneficiary.to_json_body()}
        return self._write(OrderTicket, "PATCH", path, body, language)

    # -- documents ------------------------------------------------------------------

    def list_documents(self, order_id: str, *, language: str | None = None) -> list[DocumentRef]:
        """The order's documents known so far. The listing may lag behind the document
        IRIs of the order answer: an empty or partial listing means "not ready yet"."""
        path = f"/v1/booking/orders/{_seg(order_id)}/documents"
        return self._all(DocumentRef, path, None, language)

    def get_document(
        self, order_id: str, document_id: str, *, language: str | None = None
    ) -> DocumentRef:
        """`GET /v1/booking/orders/{o}/documents/{d}`: one document (`downloadableAt`)."""
        path = f"/v1/booking/orders/{_seg(order_id)}/documents/{_seg(document_id)}"
        return self._get(DocumentRef, path, None, language)

    def get_document_url(
        self, order_id: str, document_id: str, *, language: str | None = None
    ) -> DocumentUrl:
        """PATCH a document with `{}` to get a temporary download URL (lapses; see expires_at).

        Errors: KorusRejectedError with `.not_yet_downloadable` (before `downloadableAt`)
        or `.beneficiary_missing`: ask again later / after set_beneficiary.
        KorusOutcomeUnknownError: nothing is lost; asking again is safe.
        """
        path = f"/v1/booking/orders/{_seg(order_id)}/documents/{_seg(document_id)}"
        return self._write(DocumentUrl, "PATCH", path, {}, language)


def _field_path(loc: tuple[int | str, ...]) -> str:
    """`("orders", 0, "customer")` -> `orders[0].customer` (names and indexes only)."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def parse_answer(model: type[M], data: Any, method: str, path: str) -> M:
    """Read a 2xx answer into `model`, or log, alert and raise KorusUnreadableAnswerError.

    The log line and the alert name the call and the field paths that failed, with the
    error kind, never a value: answers carry customers' names, emails and phones.
    """
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as error:
        fields = tuple(
            f"{_field_path(item['loc'])} ({item['type']})" for item in error.errors()[:20]
        )
        message = f"unreadable {model.__name__} answer: {'; '.join(fields)}"
        log.error("%s %s: %s", method, path, message)
        alert("korus_unreadable_answer", current_booking_id(), f"{method} {path}: {message}")
        # A write that answered 2xx took effect; only its answer is unexpected.
        kind = KorusUnreadableAnswerError if method == "GET" else KorusUnreadableWriteError
        # No body excerpt: it would carry the customer's data into logs and Sentry.
        raise kind(message, method=method, path=path, fields=fields) from error
