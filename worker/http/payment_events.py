"""Provider event bodies → `PaymentEvent` (pure functions, no I/O).

A mapping returns a `PaymentEvent` to record, or an `Ignored` with the reason (an event
type we do not act on, or a known type without a booking id: answered 200 so the
provider stops retrying). A body that is signed but does not have the shape of its type
raises `MalformedEventError` (answered 400).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from worker.booking.ids import is_booking_id, printable
from worker.booking.requests import PaymentEvent

STRIPE = "stripe"
PAYMENTS = "payments"

# Provider ids (events, payments): visible ASCII only, so they are safe in logs and keys.
Id = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,255}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]

STRIPE_SUCCEEDED = frozenset(
    {
        "payment_intent.succeeded",
        "checkout.session.completed",
        # Delayed payment methods: `completed` arrives unpaid, then one of these.
        "checkout.session.async_payment_succeeded",
    }
)
# A failed attempt: the customer may still pay the same PaymentIntent (a timeline note).
STRIPE_FAILED = frozenset(
    {
        "payment_intent.payment_failed",
        "checkout.session.async_payment_failed",
    }
)
# The payment is off: the only Stripe event that may cancel a booking (never a paid one).
STRIPE_CANCELED = frozenset({"payment_intent.canceled"})


class MalformedEventError(ValueError):
    """A verified body that lacks what its event type must carry."""


@dataclass(frozen=True)
class Ignored:
    event_id: str
    event_type: str
    reason: Literal["unknown_type", "no_booking_id", "invalid_booking_id", "not_paid"]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class StripeObject(_Loose):
    id: Id
    object: str | None = None
    amount: int | None = Field(default=None, ge=0, strict=True)
    amount_received: int | None = Field(default=None, ge=0, strict=True)
    amount_total: int | None = Field(default=None, ge=0, strict=True)
    currency: Currency | None = None
    payment_intent: Id | None = None
    payment_status: str | None = None
    metadata: dict[str, Any] | None = None


class StripeEventData(_Loose):
    object: StripeObject


class StripeEvent(_Loose):
    """The part of a Stripe event this endpoint reads (other members are allowed)."""

    id: Id
    type: str
    data: StripeEventData


class PaymentsEventData(BaseModel):
    booking_id: Id | None = None
    payment_id: Id | None = None
    amount: int | None = Field(default=None, ge=0, strict=True, description="minor units")
    currency: Currency | None = None


class PaymentsEvent(_Loose):
    """`POST /webhooks/payments` body (Standard Webhooks; the event id is `webhook-id`)."""

    type: str = Field(examples=["payment.succeeded", "payment.failed"])
    data: PaymentsEventData


def _validate(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors())
        raise MalformedEventError(f"invalid event fields: {fields}") from None


_INVALID = "invalid"


def _booking_id(value: object) -> str | None:
    """The booking id if well formed, None when absent, `_INVALID` otherwise (answered
    200 "ignored": a signed event the provider must not retry, but nothing of it is used)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and is_booking_id(value):
        return value
    return _INVALID


def stripe_event(body: Any) -> PaymentEvent | Ignored:
    """Map a verified Stripe event body (module docstring for the outcomes)."""
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise MalformedEventError("not a Stripe event")
    event_type = body["type"]
    event_id = printable(body.get("id", ""), 255)
    if event_type not in STRIPE_SUCCEEDED | STRIPE_FAILED | STRIPE_CANCELED:
        return Ignored(event_id, printable(event_type), "unknown_type")
    event: StripeEvent = _validate(StripeEvent, body)
    obj = event.data.object
    booking_id = _booking_id((obj.metadata or {}).get("booking_id"))
    if booking_id is None:
        return Ignored(event.id, event_type, "no_booking_id")
    if booking_id == _INVALID:
        return Ignored(event.id, event_type, "invalid_booking_id")
    if event_type.startswith("checkout.session."):
        payment_id = obj.payment_intent or obj.id
        amount = obj.amount_total
        if event_type == "checkout.session.completed" and obj.payment_status not in (
            None,
            "paid",
            "no_payment_required",
        ):
            # Paid later by a delayed method: async_payment_succeeded will follow.
            return Ignored(event.id, event_type, "not_paid")
    else:
        payment_id = obj.id
        amount = obj.amount_received if obj.amount_received else obj.amount
    succeeded = event_type in STRIPE_SUCCEEDED
    if succeeded and (amount is None or obj.currency is None):
        raise MalformedEventError("a succeeded payment needs an amount and a currency")
    return PaymentEvent(
        provider=STRIPE,
        event_id=event.id,
        kind="succeeded"
        if succeeded
        else ("canceled" if event_type in STRIPE_CANCELED else "failed"),
        booking_id=booking_id,
        payment_id=payment_id,
        amount_minor=amount,
        currency=obj.currency.lower() if obj.currency else None,
    )


def payments_event(event_id: str, body: Any) -> PaymentEvent | Ignored:
    """Map a verified Standard Webhooks payment event; `event_id` is its `webhook-id`."""
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise MalformedEventError("not a payment event")
    event_type = body["type"]
    if event_type not in ("payment.succeeded", "payment.failed", "payment.canceled"):
        return Ignored(event_id, printable(event_type), "unknown_type")
    data_in = body.get("data")
    booking_value = data_in.get("booking_id") if isinstance(data_in, dict) else None
    if isinstance(booking_value, str) and booking_value and not is_booking_id(booking_value):
        return Ignored(event_id, event_type, "invalid_booking_id")
    event: PaymentsEvent = _validate(PaymentsEvent, body)
    data = event.data
    if data.booking_id is None:
        return Ignored(event_id, event_type, "no_booking_id")
    succeeded = event_type == "payment.succeeded"
    if data.payment_id is None:
        raise MalformedEventError("data.payment_id is required")
    if succeeded and (data.amount is None or data.currency is None):
        raise MalformedEventError("payment.succeeded needs data.amount and data.currency")
    kinds: dict[str, Literal["succeeded", "failed", "canceled"]] = {
        "payment.succeeded": "succeeded",
        "payment.failed": "failed",
        "payment.canceled": "canceled",
    }
    return PaymentEvent(
        provider=PAYMENTS,
        event_id=event_id,
        kind=kinds[event_type],
        booking_id=data.booking_id,
        payment_id=data.payment_id,
        amount_minor=data.amount,
        currency=data.currency.lower() if data.currency else None,
    )
