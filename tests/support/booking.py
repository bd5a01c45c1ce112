"""Helpers to drive bookings from tests: requests for seeded products, waits, payments."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import requests

from worker.booking.record import Booking
from worker.booking.requests import BookingRequest, PaymentEvent
from worker.booking.service import BookingService
from worker.booking.states import State
from worker.korus import models as korus

# The customer of every test booking, as JSON (merchant API and Korus bodies alike), and
# as the Korus client takes it.
CUSTOMER = {
    "firstname": "Grace",
    "lastname": "Hopper",
    "email": "grace@example.com",
    "phone": "+33123456789",
}
KORUS_CUSTOMER = korus.Customer.model_validate(CUSTOMER)


def reservation_item(
    entry: dict[str, Any],
    quantity: int = 1,
    *,
    session: int = 0,
    form_value: str | None = "Hopper",
) -> dict[str, Any]:
    """A reservation item for a `/_sandbox/catalog` entry: one ticketSessions entry per
    ticket of the offer for each unit, in ticket order, with the ticket's `session`-th
    session and its form fields filled with `form_value` (left out when None)."""
    sessions = []
    for _ in range(quantity):
        for offer_ticket in entry["offerTickets"]:
            ts: dict[str, Any] = {"ticket": offer_ticket["ticket"]}
            if offer_ticket["sessions"]:
                ts["session"] = offer_ticket["sessions"][session]
            if offer_ticket["form"] and form_value is not None:
                fields = [{"field": f, "value": form_value} for f in offer_ticket["formFields"]]
                ts["formData"] = {"form": offer_ticket["form"], "fields": fields}
            sessions.append(ts)
    return {"offer": entry["offer"], "quantity": quantity, "ticketSessions": sessions}


def korus_item(entry: dict[str, Any], quantity: int = 1) -> korus.ReservationRequestItem:
    """`reservation_item` as the Korus client takes it."""
    return korus.ReservationRequestItem.model_validate(reservation_item(entry, quantity))


def request_for(
    catalog: dict[str, Any], product: str, quantity: int = 1, **extra: Any
) -> BookingRequest:
    """A booking of `quantity` units of a seeded product (see `reservation_item`)."""
    body: dict[str, Any] = {
        "externalReference": extra.pop("external_reference", "TEST-1"),
        "items": [reservation_item(catalog[product], quantity)],
        "customer": CUSTOMER,
    }
    body.update(extra)
    return BookingRequest.model_validate(body)


def wait_for(
    service: BookingService, booking_id: str, *states: State, timeout: float = 30.0
) -> Booking:
    """Poll until the booking reaches one of `states` (bounded)."""
    deadline = time.monotonic() + timeout
    booking = service.get(booking_id)
    while time.monotonic() < deadline:
        booking = service.get(booking_id)
        if booking.state in states:
            return booking
        time.sleep(0.1)
    timeline = service.timeline(booking_id)
    raise AssertionError(
        f"{booking_id} is {booking.state}, expected {states}; timeline: {timeline}"
    )


def wait_for_state(
    api: requests.Session, url: str, states: set[str], timeout: float
) -> dict[str, Any]:
    """Poll a booking's view through the HTTP front until its state is one of `states`
    (bounded); returns the view."""
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = api.get(url, timeout=10).json()
        if view["state"] in states:
            return view
        time.sleep(0.2)
    raise AssertionError(f"still {view.get('state')} after {timeout}s: {view.get('timeline')}")


def pay(
    service: BookingService,
    booking: Booking,
    *,
    amount_minor: int | None = None,
    event_id: str | None = None,
    payment_id: str | None = None,
) -> str:
    return service.record_payment(
        PaymentEvent(
            provider="test",
            event_id=event_id or f"evt_{booking.id}",
            kind="succeeded",
            booking_id=booking.id,
            payment_id=payment_id or f"pi_{booking.id}",
            amount_minor=booking.total_minor if amount_minor is None else amount_minor,
            currency="eur",
        )
    )


def orders_by_reservation(admin: Any) -> Counter[str]:
    return Counter(o["reservation"] for o in admin.orders())


def orders_for(admin: Any, booking_id: str) -> list[dict[str, Any]]:
    return [o for o in admin.orders() if o["externalReference"] == booking_id]
