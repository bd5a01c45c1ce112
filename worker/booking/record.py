"""The booking record as stored in Redis (one JSON document per booking).

Plain data. Each step module (`reserve`, `payment`, `ordering`, `documents`, `sweep`, and
`service` for the merchant's cancel) computes a new record from an old one within the moves
`worker.booking.states.ALLOWED` permits, and `worker.booking.store` writes it with a
compare-and-set on `version`.
Customer personal data lives only here (needed to place the order); it is never copied
into task arguments, logs, metrics or Sentry events.

What the merchant asks for (`ReservationItem` and its `TicketSession`s and `FormData`,
`Customer`, `Beneficiary`) is modelled once, here: `requests.BookingRequest` validates the
merchant's JSON into these models, the record keeps them, and `korus_mapping` turns them
into the Korus client's models. Their rules therefore also run on every stored record
read back: loosen one freely, but a stricter rule makes older records that break it
unreadable (it needs a migration of the stored records first). The record stores items
and beneficiaries as the merchant API's JSON (`ticketSessions`, `formData`, `dateOfBirth`,
no nulls), as it always has; both names are read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypedDict

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    model_validator,
)

from worker.booking.states import State

Iri = Annotated[str, StringConstraints(pattern=r"^/v1/[A-Za-z0-9_./{}-]+$", max_length=500)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, populate_by_name=True)


# -- what the merchant asks for ----------------------------------------------------------


class FormField(Model):
    field: Iri
    value: Annotated[str, StringConstraints(max_length=1000)]


class FormData(Model):
    form: Iri
    fields: list[FormField] = Field(max_length=50)


class TicketSession(Model):
    ticket: Iri
    session: Iri | None = None
    form_data: FormData | None = Field(default=None, alias="formData")


class ReservationItem(Model):
    """One Korus reservation item. An offer may bundle several tickets: `quantity` counts
    offers, and `ticketSessions` holds one entry per ticket of the offer for each unit,
    in ticket order (quantity x tickets-of-the-offer entries; korus-api.md)."""

    offer: Iri = Field(description="The offer's IRI.")
    quantity: int = Field(ge=1, le=50, description="How many units of the offer (not tickets).")
    ticket_sessions: list[TicketSession] = Field(
        alias="ticketSessions",
        min_length=1,
        max_length=200,
        description="One entry per ticket of the offer for each unit, in ticket order: "
        "quantity x (tickets of the offer) entries. A bundle offer of two tickets with "
        "quantity 2 takes [t1, t2, t1, t2].",
    )

    @model_validator(mode="after")
    def _tickets_of_the_offer_per_unit(self) -> ReservationItem:
        count, units = len(self.ticket_sessions), self.quantity
        if count % units:
            raise ValueError(
                "ticketSessions must hold one entry per ticket of the offer for each unit "
                f"(a multiple of quantity {units}); got {count}"
            )
        per_unit = count // units
        first = [entry.ticket for entry in self.ticket_sessions[:per_unit]]
        for unit in range(1, units):
            tickets = self.ticket_sessions[unit * per_unit : (unit + 1) * per_unit]
            if [entry.ticket for entry in tickets] != first:
                raise ValueError(
                    f"ticketSessions of unit {unit + 1} must list the same tickets, in the "
                    "same order, as unit 1"
                )
        return self


class Customer(Model):
    firstname: Text
    lastname: Text
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    country: Annotated[str, StringConstraints(min_length=2, max_length=2)] | None = None
    language: Annotated[str, StringConstraints(min_length=2, max_length=5)] | None = None
    title: Annotated[str, StringConstraints(max_length=20)] | None = None
    optin: bool | None = None


class Beneficiary(Model):
    firstname: Text
    lastname: Text
    title: Annotated[str, StringConstraints(max_length=20)] | None = None
    nationality: Annotated[str, StringConstraints(max_length=2)] | None = None
    date_of_birth: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = Field(
        default=None, alias="dateOfBirth"
    )
    place_of_birth: Text | None = Field(default=None, alias="placeOfBirth")
    email: Annotated[str, StringConstraints(max_length=254)] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None


# -- what the steps add ------------------------------------------------------------------


class HeldReservation(Model):
    """A Korus hold: what the order call needs and when it lapses."""

    id: str
    iri: str
    expires_at: datetime
    total_incl_tax: Decimal
    offer: str | None = None


class Payment(Model):
    """A payment the provider reported. Deduped by `payment_id` (business id)."""

    provider: str
    event_id: str
    payment_id: str
    amount_minor: int
    currency: str
    received_at: datetime


class PaymentEventRecord(Model):
    """A provider event as claimed by its event id (`keys.payment_event`), written by the
    web front (`BookingService.record_payment`, or the ingress script) and read by the
    payment step. `enqueued` turns true once its message is surely on the broker;
    `recorded_at` (epoch seconds) dates the delivery that holds the claim."""

    booking_id: str
    kind: Literal["succeeded", "failed", "canceled"]
    payment: Payment
    enqueued: bool
    recorded_at: float


class OrderedTicket(Model):
    """A ticket of an order. `id`, `iri` and `item_id` come only from a real order-ticket
    IRI (`/v1/booking/orders/{o}/items/{i}/tickets/{t}`): the documented order answer
    gives blank nodes instead, and no path may be built from those. `ticket` is the
    catalog ticket it is for (matches the ticket order of the request)."""

    id: str | None = None
    iri: str | None = None
    item_id: str | None = None
    ticket: str | None = None
    voucher: str | None = None
    status: str | None = None
    required_beneficiary_fields: list[str] = Field(default_factory=list)
    seating: dict[str, Any] | None = None
    occurs_at: str | None = None


class PlacedOrder(Model):
    id: str
    iri: str
    reference: str | None = None
    reservation: str
    total_incl_tax: Decimal | None = None
    tickets: list[OrderedTicket] = Field(default_factory=list)
    # The document ids the order answer listed: the documents the booking expects.
    document_ids: list[str] = Field(default_factory=list)


class TicketDocument(Model):
    order_id: str
    document_id: str
    downloadable_at: datetime | None = None
    temporary_url: str | None = None
    url_expires_at: datetime | None = None
    # The language Korus produced the PDF in (`cachedLanguage` of the URL answer).
    cached_language: str | None = None


class OrderAttempt(Model):
    """Marks that an order call may be under way, so no second POST goes out blindly.

    `lease_until` is after the read timeout of the call: until then another task must not
    conclude that the call is lost. `sent` is False only when the client proved that the
    request never left (connection refused): then a new POST needs no reconciliation.
    """

    number: int
    task_id: str | None = None
    started_at: datetime
    lease_until: datetime
    sent: bool = True
    # Korus refused the call (a 422 other than documented expiry, or failedOrders): the
    # listing is consulted again until it shows the order or the window runs out; no new
    # call is sent for it.
    refused: bool = False
    # The worker process (host:pid) sending the call; once its liveness key lapses the
    # call is known dead and the attempt is reconciled without waiting for the lease.
    owner: str | None = None


class StepClaim(Model):
    """The right to run one step (reserve, documents) of a booking, numbered and leased.

    Taken by compare-and-set before any Korus call; a second message for the same step
    finds a live claim and does nothing. A claim is live until `lease_until` and while
    its owner's liveness key exists; the sweeper drives the booking again once it lapsed.
    """

    step: str
    number: int
    task_id: str | None = None
    owner: str | None = None
    started_at: datetime
    lease_until: datetime


class Booking(Model):
    id: str
    external_reference: str
    merchant: str = "default"
    state: State = State.RECEIVED
    version: int = 0
    created_at: datetime
    updated_at: datetime
    items: list[ReservationItem]
    customer: Customer
    beneficiaries: list[Beneficiary] = Field(default_factory=list)
    callback_url: str | None = None
    language: str | None = None
    policy: str = "all_or_nothing"

    reservations: list[HeldReservation] = Field(default_factory=list)
    failed_reservations: list[dict[str, Any]] = Field(default_factory=list)
    released_reservations: list[HeldReservation] = Field(default_factory=list)
    total_incl_tax: Decimal | None = None
    currency: str = "eur"
    reserve_attempts: int = 0
    rescue: bool = False

    payment: Payment | None = None
    pending_payment: Payment | None = None
    extra_payments: list[Payment] = Field(default_factory=list)

    order_attempt: OrderAttempt | None = None
    order_attempts: int = 0
    orders: list[PlacedOrder] = Field(default_factory=list)
    failed_orders: list[dict[str, Any]] = Field(default_factory=list)
    # Since when an order call was refused and the listing does not show the order
    # (bounded by ORDER_RECONCILE_WINDOW_SECONDS, then a person is alerted).
    order_unresolved_since: datetime | None = None

    documents: list[TicketDocument] = Field(default_factory=list)
    beneficiaries_sent: list[str] = Field(default_factory=list)
    # Since when the document listing lacks documents the order answer named (bounded by
    # DOCUMENTS_LISTING_WAIT_SECONDS, then a person is alerted).
    documents_missing_since: datetime | None = None

    claim: StepClaim | None = None
    # Failures of the current state's step, reset by every state change (store.update).
    step_failures: int = 0
    unexpected_failures: int = 0
    # When the sweeper drives the step again: a backoff longer than a broker countdown,
    # or a parked booking (retries exhausted, alerted).
    retry_at: datetime | None = None

    reason: str | None = None
    alerts: list[str] = Field(default_factory=list)

    @field_serializer("items", "beneficiaries")
    def _as_api_json(self, values: list[ReservationItem] | list[Beneficiary]) -> list[Any]:
        """Stored as the merchant API's JSON: camelCase names, no nulls."""
        return [v.model_dump(mode="json", by_alias=True, exclude_none=True) for v in values]

    @property
    def earliest_expires_at(self) -> datetime | None:
        live = [r.expires_at for r in self.reservations]
        return min(live) if live else None

    @property
    def total_minor(self) -> int | None:
        if self.total_incl_tax is None:
            return None
        return int((self.total_incl_tax * 100).to_integral_value())

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Booking:
        return cls.model_validate_json(raw)


# One timeline entry as the store reads it and every audience gets it (a TypedDict:
# "from" is a Python keyword). `at` is ISO 8601 with its offset.
TimelineEntry = TypedDict(
    "TimelineEntry",
    {"at": str, "from": str | None, "to": str, "reason": str | None, "task_id": str | None},
)
