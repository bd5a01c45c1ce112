"""Validated inputs of the public entry points (merchant API, CLI, demo, webhooks)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Iri = Annotated[str, StringConstraints(pattern=r"^/v1/[A-Za-z0-9_./{}-]+$", max_length=500)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FormField(ApiModel):
    field: Iri
    value: Annotated[str, StringConstraints(max_length=1000)]


class FormData(ApiModel):
    form: Iri
    fields: list[FormField] = Field(max_length=50)


class TicketSession(ApiModel):
    ticket: Iri
    session: Iri | None = None
    form_data: FormData | None = Field(default=None, alias="formData")


class ReservationItem(ApiModel):
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

    def korus_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True)


class CustomerIn(ApiModel):
    firstname: Text
    lastname: Text
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    country: Annotated[str, StringConstraints(min_length=2, max_length=2)] | None = None
    language: Annotated[str, StringConstraints(min_length=2, max_length=5)] | None = None
    title: Annotated[str, StringConstraints(max_length=20)] | None = None
    optin: bool | None = None


class Beneficiary(ApiModel):
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


class BookingRequest(ApiModel):
    """`POST /v1/bookings` body (design.md)."""

    external_reference: Annotated[
        str, StringConstraints(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_.:-]+$")
    ] = Field(alias="externalReference")
    items: list[ReservationItem] = Field(min_length=1, max_length=20)
    customer: CustomerIn
    beneficiaries: list[Beneficiary] = Field(default_factory=list, max_length=200)
    callback_url: (
        Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)] | None
    ) = Field(default=None, alias="callbackUrl")
    language: Annotated[str, StringConstraints(min_length=2, max_length=5)] | None = None
    reservation_policy: Literal["all_or_nothing", "partial"] | None = Field(
        default=None, alias="reservationPolicy"
    )


class PaymentEvent(BaseModel):
    """A verified payment-provider event, reduced to what the booking needs."""

    provider: str
    event_id: str
    # failed: a declined attempt (the customer may retry); canceled: the payment is off.
    kind: Literal["succeeded", "failed", "canceled"]
    booking_id: str
    payment_id: str
    amount_minor: int | None = None
    currency: str | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.event_id}"
