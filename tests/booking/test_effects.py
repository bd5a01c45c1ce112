"""Follow-ups after a transition: which task messages a booking's state sends."""

from __future__ import annotations

from tests.factories import RecordingEnqueuer, booking_in
from worker.booking.effects import after_transition
from worker.booking.states import State


def test_a_rescue_reservation_is_sent_once_on_entry_not_on_every_later_step() -> None:
    entering, later = RecordingEnqueuer(), RecordingEnqueuer()
    after_transition(booking_in(State.RESERVING, rescue=True), [State.RESERVING], entering)
    after_transition(booking_in(State.RESERVING, rescue=True), [], later)

    assert entering.names == ["reserve"]
    assert later.names == []  # a second message would make a second Korus hold


def test_paid_and_ordered_bookings_are_driven_again_by_any_step() -> None:
    paid, ordered = RecordingEnqueuer(), RecordingEnqueuer()
    after_transition(booking_in(State.PAID), [], paid)
    after_transition(booking_in(State.ORDERED), [], ordered)

    assert paid.names == ["create_order"]  # guarded by the order claim
    assert ordered.names == ["fetch_documents"]


def test_entering_a_closed_state_notifies_the_merchant() -> None:
    sent = RecordingEnqueuer()
    after_transition(booking_in(State.CANCELLED), [State.CANCELLED], sent)
    assert sent.names == ["notify"]
