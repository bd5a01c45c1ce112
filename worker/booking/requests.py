"""Validated inputs of the public entry points (merchant API, CLI, demo, webhooks)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from worker.booking.record import Beneficiary, Customer, ReservationItem


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# The body's items, customer and beneficiaries are the record's own models, kept as they
# are (worker.booking.record). Docstrings here are the OpenAPI document's descriptions.
class BookingRequest(ApiModel):
    """`POST /v1/bookings` body (design.md)."""

    external_reference: Annotated[
        str, StringConstraints(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_.:-]+$")
    ] = Field(alias="externalReference")
    items: list[ReservationItem] = Field(min_length=1, max_length=20)
    customer: Customer
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
