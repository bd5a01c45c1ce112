"""Bookings in any state and recording fakes of the domain's protocols, for unit tests.

`booking_in(state)` builds a record as the steps would have left it in that state: holds
once reserved, a payment once paid, an order attempt while ordering. Any `Booking` field
can be given to override what the state implies.

The fakes subclass the protocols they stand for, and mypy checks them (pyproject
`files`): a method renamed in a protocol leaves its fake abstract, so `make lint` fails.
- `RecordingEnqueuer`: the `Enqueuer` of worker.booking.effects keeping calls instead of
  sending messages;
- `RotatingTokens`: a Korus `TokenProvider` handing out t1, t2, ... one per invalidation.
"""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.support.booking import CUSTOMER
from worker.booking.effects import Enqueuer
from worker.booking.record import (
    Booking,
    Customer,
    HeldReservation,
    OrderAttempt,
    Payment,
    ReservationItem,
    TicketSession,
    utcnow,
)
from worker.booking.states import PAID_STATES, State
from worker.korus.auth import TokenProvider

OFFER = "/v1/ticketing/catalogs/c/offers/o"
# One unit of a one-ticket offer, as a merchant asks for it.
ITEM = ReservationItem(
    offer=OFFER, quantity=1, ticket_sessions=[TicketSession(ticket=f"{OFFER}/tickets/t")]
)
HOLD_TOTAL = Decimal("40.00")
# States with no hold yet: the reservation step has not answered.
UNRESERVED: frozenset[State] = frozenset({State.RECEIVED, State.RESERVING})

_numbers = itertools.count(1)


def booking_in(
    state: State = State.RECEIVED,
    *,
    now: datetime | None = None,
    prefix: str = "bk_test",
    holds: int | None = None,
    expires_in: float | None = 600,
    hold_total: Decimal = HOLD_TOTAL,
    paid: bool | None = None,
    updated_ago: float = 0,
    **fields: Any,
) -> Booking:
    """A booking in `state`, as the steps would have left it.

    - id `{prefix}{n:08d}` and external reference `{PREFIX}-{n}`, n unique per process;
    - `holds` Korus holds (default: one, none before the reservation answered or when
      `expires_in` is None) of `hold_total` each, lapsing `expires_in` s after `now`;
      the booking's total is their sum;
    - a payment of that total in the paid states (or when `paid` is True);
    - in `ordering`, a first order attempt leased for 30 s.
    `fields` override any of it (they are validated as `Booking` fields).
    """
    now = now or utcnow()
    n = next(_numbers)
    updated = now - timedelta(seconds=updated_ago)
    if holds is None:
        holds = 0 if state in UNRESERVED or expires_in is None else 1
    values: dict[str, Any] = {
        "id": f"{prefix}{n:08d}",
        "external_reference": f"{prefix.removeprefix('bk_').upper()}-{n}",
        "state": state,
        "created_at": updated - timedelta(seconds=5),
        "updated_at": updated,
        "items": [ITEM.model_copy(deep=True)],
        "customer": Customer.model_validate(CUSTOMER),
    }
    if holds:
        values["reservations"] = [
            HeldReservation(
                id=f"r{h}",
                iri=f"/v1/booking/reservations/r{h}",
                expires_at=now + timedelta(seconds=expires_in or 0),
                total_incl_tax=hold_total,
            )
            for h in range(holds)
        ]
        values["total_incl_tax"] = hold_total * holds
    if paid if paid is not None else state in PAID_STATES:
        total = values.get("total_incl_tax", hold_total)
        values["payment"] = Payment(
            provider="test", event_id=f"evt{n}", payment_id=f"pi{n}",
            amount_minor=int(total * 100), currency="eur", received_at=updated,
        )
    if state == State.ORDERING:
        values["order_attempts"] = 1
        values["order_attempt"] = OrderAttempt(
            number=1, task_id="t", started_at=updated,
            lease_until=updated + timedelta(seconds=30),
        )
    values.update(fields)
    return Booking(**values)


Call = tuple[str, str, dict[str, Any]]


class RecordingEnqueuer(Enqueuer):
    """The Enqueuer protocol keeping `(method, booking_id, options)` instead of sending.

    Options hold what the call said beyond the booking id: `event_id` (payment),
    `event` (notify), and `urgent`, `countdown`, `refresh` when not their defaults
    (`urgent` is always kept for create_order). Thread-safe.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def _add(self, name: str, booking_id: str, **options: Any) -> None:
        with self._lock:
            self.calls.append((name, booking_id, options))

    def reserve(self, booking_id: str) -> None:
        self._add("reserve", booking_id)

    def payment_succeeded(self, booking_id: str, event_id: str) -> None:
        self._add("payment_succeeded", booking_id, event_id=event_id)

    def create_order(self, booking_id: str, *, urgent: bool = False, countdown: float = 0) -> None:
        self._add("create_order", booking_id, urgent=urgent,
                  **({"countdown": countdown} if countdown else {}))

    def fetch_documents(
        self, booking_id: str, *, countdown: float = 0, refresh: bool = False
    ) -> None:
        self._add("fetch_documents", booking_id, **({"countdown": countdown} if countdown else {}),
                  **({"refresh": True} if refresh else {}))

    def notify(self, booking_id: str, event_type: str) -> None:
        self._add("notify", booking_id, event=event_type)

    @property
    def names(self) -> list[str]:
        """The methods called, in order."""
        return [name for name, _, _ in self.calls]

    def named(self, name: str) -> list[Call]:
        return [call for call in self.calls if call[0] == name]

    def take(self, index: int) -> Call:
        """Remove and return the index-th call (modulo the count): a message delivered."""
        with self._lock:
            return self.calls.pop(index % len(self.calls))


class RotatingTokens(TokenProvider):
    """Hands out t1, t2, ... ; a new one only after the current one is invalidated."""

    def __init__(self) -> None:
        self.number = 1
        self.invalidated: list[str] = []

    def token(self) -> str:
        return f"t{self.number}"

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        if token == f"t{self.number}":
            self.number += 1


# Checked by mypy: each fake is accepted wherever its protocol is expected.
_CHECKED: tuple[Enqueuer, TokenProvider] = (RecordingEnqueuer(), RotatingTokens())
