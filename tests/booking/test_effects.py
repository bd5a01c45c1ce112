"""Follow-ups after a transition: which task messages a booking's state sends."""

from __future__ import annotations

from typing import Any

from tests.support.booking import CUSTOMER
from worker.booking.effects import after_transition
from worker.booking.record import Booking, Customer, utcnow
from worker.booking.states import State


class Sent:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.calls.append(name)


def booking_in(state: State, *, rescue: bool = False) -> Booking:
    now = utcnow()
    return Booking(
        id="bk_fx",
        external_reference="R",
        created_at=now,
        updated_at=now,
        items=[],
        customer=Customer(**CUSTOMER),
        state=state,
        rescue=rescue,
    )


def test_a_rescue_reservation_is_sent_once_on_entry_not_on_every_later_step() -> None:
    entering, later = Sent(), Sent()
    after_transition(booking_in(State.RESERVING, rescue=True), [State.RESERVING], entering)
    after_transition(booking_in(State.RESERVING, rescue=True), [], later)

    assert entering.calls == ["reserve"]
    assert later.calls == []  # a second message would make a second Korus hold


def test_paid_and_ordered_bookings_are_driven_again_by_any_step() -> None:
    paid, ordered = Sent(), Sent()
    after_transition(booking_in(State.PAID), [], paid)
    after_transition(booking_in(State.ORDERED), [], ordered)

    assert paid.calls == ["create_order"]  # guarded by the order claim
    assert ordered.calls == ["fetch_documents"]


def test_entering_a_closed_state_notifies_the_merchant() -> None:
    sent = Sent()
    after_transition(booking_in(State.CANCELLED), [State.CANCELLED], sent)
    assert sent.calls == ["notify"]
