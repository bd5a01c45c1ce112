"""The sandbox's mutable world, guarded by ONE lock.

Guarantees:
- Every read or write of reservations, orders and inventory happens under `lock`, after
  `expire_due(now)` (`with state.settled(now):` does both): holds lapse lazily but
  exactly at `expiresAt`, give their inventory (per offer, per session, seats) back
  once, and no reader ever sees a lapsed hold as live. Expiry costs O(log n) per lapsed
  hold (a heap keyed by `expires_at`).
- Nobody sleeps while holding `lock` (faults sleep in the server, outside it).
- Tokens and call counts have their own small locks, so an authenticated read does not
  queue behind a booking write; `reset` forgets everything except issued tokens.
"""

from __future__ import annotations

import heapq
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from korus_sandbox.catalog import Catalog, Offer, Session, Ticket


@dataclass
class RuntimeConfig:
    """The settings `/_sandbox/config` may change while the sandbox runs."""

    hold_seconds: float
    token_lifetime_seconds: float
    documents_delay_seconds: float
    document_url_lifetime_seconds: float
    client_id: str
    client_secret: str
    # Sandbox rules for the documented lag: the orders listing leaves out orders younger
    # than this; the document listing (and `GET .../documents/{d}`) leaves out the
    # documents of such orders. 0: no lag.
    orders_listing_lag_seconds: float = 0.0
    documents_listing_lag_seconds: float = 0.0

    def public(self) -> dict[str, float]:
        return {
            "hold_seconds": self.hold_seconds,
            "token_lifetime_seconds": self.token_lifetime_seconds,
            "documents_delay_seconds": self.documents_delay_seconds,
            "document_url_lifetime_seconds": self.document_url_lifetime_seconds,
            "orders_listing_lag_seconds": self.orders_listing_lag_seconds,
            "documents_listing_lag_seconds": self.documents_listing_lag_seconds,
        }


@dataclass(slots=True)
class HeldTicket:
    """One ticket of a hold: its ticket, its session (or None), its seat (or None)."""

    ticket: Ticket
    session: Session | None
    seat: int | None
    form_values: dict[str, str]


@dataclass(slots=True)
class Reservation:
    id: str
    offer: Offer
    held: list[HeldTicket]
    created_at: float
    expires_at: float
    status: str = "reserved"  # reserved | released
    order_id: str | None = None

    @property
    def iri(self) -> str:
        return f"/v1/booking/reservations/{self.id}"

    @property
    def expired(self) -> bool:
        return self.status == "released"

    @property
    def quantity(self) -> int:
        """Units of the offer held: each unit holds one of each of the offer's tickets."""
        return len(self.held) // max(1, len(self.offer.tickets))


@dataclass(slots=True)
class OrderTicket:
    id: str
    iri: str
    held: HeldTicket
    voucher: str
    occurs_at: float
    required_fields: tuple[str, ...]
    beneficiary: dict[str, str] | None
    deadline: float | None
    amendable: bool

    @property
    def beneficiary_missing(self) -> bool:
        given = self.beneficiary or {}
        return any(not given.get(name) for name in self.required_fields)

    @property
    def status(self) -> str:
        return "waiting_beneficiary_data" if self.beneficiary_missing else "validated"


@dataclass(slots=True)
class OrderItem:
    id: str
    iri: str
    offer: Offer
    tickets: list[OrderTicket]


@dataclass(slots=True)
class Document:
    id: str
    iri: str
    ticket: OrderTicket
    downloadable_at: float


@dataclass(slots=True)
class Order:
    id: str
    reference: str
    external_reference: str
    connector_reference: str
    created_at: float
    reservation: Reservation
    customer: dict[str, Any]
    items: list[OrderItem]
    documents: list[Document] = field(default_factory=list)

    @property
    def iri(self) -> str:
        return f"/v1/booking/orders/{self.id}"


class SandboxState:
    """Reservations, orders, inventory, tokens and call counts of one sandbox."""

    def __init__(self, catalog: Catalog, config: RuntimeConfig) -> None:
        self.catalog = catalog
        self.config = config
        self.lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._calls_lock = threading.Lock()
        self._access_tokens: dict[str, float] = {}
        self._refresh_tokens: dict[str, float] = {}
        self._calls: Counter[str] = Counter()
        self.reservations: dict[str, Reservation] = {}
        self.orders: dict[str, Order] = {}
        self.orders_by_reference: dict[str, list[Order]] = {}
        self.references: set[str] = set()
        self.documents: dict[str, tuple[Order, Document]] = {}
        self.offer_stock: dict[str, int] = {}
        self.session_stock: dict[str, int] = {}
        self.free_seats: dict[str, list[int]] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._restore_inventory()

    # -- lifecycle (callers hold `lock`) ---------------------------------------------

    def reset(self) -> None:
        """Forget reservations, orders and call counts; restore inventory. Tokens stay."""
        self.reservations.clear()
        self.orders.clear()
        self.orders_by_reference.clear()
        self.references.clear()
        self.documents.clear()
        self._expiry_heap.clear()
        self._restore_inventory()
        with self._calls_lock:
            self._calls.clear()

    def _restore_inventory(self) -> None:
        self.offer_stock = {offer.id: offer.inventory for offer in self.catalog.offers}
        self.session_stock = {
            session.id: session.inventory
            for offer in self.catalog.offers
            for ticket in offer.tickets
            for session in ticket.sessions
        }
        self.free_seats = {
            offer.id: list(range(1, offer.inventory + 1))
            for offer in self.catalog.offers
            if offer.seated
        }

    # -- holds (callers hold `lock`) -------------------------------------------------

    @contextmanager
    def settled(self, now: float | None = None) -> Iterator[SandboxState]:
        """Hold `lock`, the holds due by `now` (default: this instant) already released."""
        with self.lock:
            self.expire_due(time.time() if now is None else now)
            yield self

    def expire_due(self, now: float) -> None:
        """Release every unordered hold whose `expires_at` has passed."""
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            _, reservation_id = heapq.heappop(heap)
            reservation = self.reservations.get(reservation_id)
            if reservation is None or reservation.status != "reserved":
                continue
            if reservation.order_id is not None:
                continue
            reservation.status = "released"
            self._give_back(reservation)

    def take_seat(self, offer: Offer) -> int | None:
        seats = self.free_seats.get(offer.id)
        return heapq.heappop(seats) if seats else None

    def add_reservation(self, reservation: Reservation) -> None:
        """Record a hold whose tickets are already counted; schedules its expiry."""
        offer = reservation.offer
        self.offer_stock[offer.id] -= reservation.quantity
        for held in reservation.held:
            if held.session is not None:
                self.session_stock[held.session.id] -= 1
        self.reservations[reservation.id] = reservation
        heapq.heappush(self._expiry_heap, (reservation.expires_at, reservation.id))

    def _give_back(self, reservation: Reservation) -> None:
        offer = reservation.offer
        self.offer_stock[offer.id] += reservation.quantity
        for held in reservation.held:
            if held.session is not None:
                self.session_stock[held.session.id] += 1
            if held.seat is not None:
                heapq.heappush(self.free_seats[offer.id], held.seat)

    def add_order(self, order: Order) -> None:
        self.orders[order.id] = order
        self.orders_by_reference.setdefault(order.external_reference, []).append(order)
        self.references.add(order.reference)
        for document in order.documents:
            self.documents[document.id] = (order, document)
        order.reservation.order_id = order.id

    # -- tokens ----------------------------------------------------------------------

    def issue_token(self, now: float) -> tuple[str, str, float]:
        """A new (access token, refresh token, lifetime); purges lapsed ones."""
        lifetime = self.config.token_lifetime_seconds
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        with self._token_lock:
            for store in (self._access_tokens, self._refresh_tokens):
                for key in [key for key, until in store.items() if until <= now]:
                    del store[key]
            self._access_tokens[access] = now + lifetime
            self._refresh_tokens[refresh] = now + lifetime
        return access, refresh, lifetime

    def token_valid(self, token: str, now: float) -> bool:
        until = self._access_tokens.get(token)
        return until is not None and now < until

    def refresh_valid(self, token: str, now: float) -> bool:
        """A known, unlapsed refresh token (reusable, as Keycloak's default is)."""
        until = self._refresh_tokens.get(token)
        return until is not None and now < until

    # -- call counts -----------------------------------------------------------------

    def count_call(self, endpoint: str) -> None:
        with self._calls_lock:
            self._calls[endpoint] += 1

    def calls(self) -> dict[str, int]:
        with self._calls_lock:
            return dict(self._calls)
