"""The seeded catalog: one catalog "Sandbox Parks" with eight products, one offer each.

Ids are deterministic for a given seed (same seed, same IRIs), so tests and demos can be
replayed; dates are relative to the day the sandbox starts (offers are always in the
future). The catalog itself never changes while the sandbox runs; inventory lives in
`state.py`.

| product               | tickets      | price  | inventory           | special                    |
|-----------------------|--------------|--------|---------------------|----------------------------|
| Day Pass              | dateAccess   | 40.00  | 1,000,000           | benchmarks use it          |
| Timed Museum Entry    | 4 sessions   | 25.00  | 500 per session     | a session must be chosen   |
| Limited Concert       | dateAccess   | 80.00  | 5                   | seated                     |
| Named Festival Pass   | dateAccess   | 120.00 | 1,000               | beneficiary data needed    |
| Late Documents Tour   | dateAccess   | 30.00  | 1,000               | documents after a delay    |
| Broken Subsystem Ride | dateAccess   | 50.00  | 1,000               | its sub-system always fails|
| Guided Tour With Form | dateAccess   | 15.00  | 1,000               | form "Visitor last name"   |
| Park And Show Bundle  | 2 (see below)| 80.00  | 1,000; 300 per session | a bundle of two tickets |

The last one is shaped like the documented booking request (korus-examples): one offer
made of two tickets, the first without a session, the second with sessions (and a seat).
`quantity` counts units of the offer; each unit holds one of each of its tickets.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from decimal import Decimal

from korus_sandbox.ids import uuid7

CATALOG_NAME = "Sandbox Parks"
ORGANIZATION_NAME = "Sandbox Parks Operator"
BENEFICIARY_FIELDS = ("firstname", "lastname", "dateOfBirth")
FORM_FIELD_LABEL = "Visitor last name"
_DAY = 86_400
# Ids carry a fixed timestamp so that they depend on the seed only.
_ID_EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z


@dataclass(frozen=True)
class ProductSpec:
    name: str
    price: str
    inventory: int
    session_inventory: int = 0
    session_count: int = 0
    beneficiary: bool = False
    late_documents: bool = False
    subsystem_fails: bool = False
    form: bool = False
    seated: bool = False
    # A bundle: a date-access entry ticket plus a seated show ticket with sessions.
    bundle: bool = False


PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("Day Pass", "40.00", 1_000_000),
    ProductSpec("Timed Museum Entry", "25.00", 2_000, session_inventory=500, session_count=4),
    ProductSpec("Limited Concert", "80.00", 5, seated=True),
    ProductSpec("Named Festival Pass", "120.00", 1_000, beneficiary=True),
    ProductSpec("Late Documents Tour", "30.00", 1_000, late_documents=True),
    ProductSpec("Broken Subsystem Ride", "50.00", 1_000, subsystem_fails=True),
    ProductSpec("Guided Tour With Form", "15.00", 1_000, form=True),
    ProductSpec(
        "Park And Show Bundle", "80.00", 1_000, session_inventory=300, session_count=3, bundle=True
    ),
)


@dataclass(frozen=True)
class FormField:
    id: str
    iri: str
    label: str
    required: bool


@dataclass(frozen=True)
class Form:
    id: str
    iri: str
    name: str
    fields: tuple[FormField, ...]


@dataclass(frozen=True)
class Session:
    id: str
    iri: str
    starts_at: float
    ends_at: float
    inventory: int


@dataclass(frozen=True)
class Ticket:
    id: str
    iri: str
    name: str
    date_access: bool
    form: Form | None
    sessions: tuple[Session, ...]
    seated: bool = False


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    description: str


@dataclass(frozen=True)
class Offer:
    id: str
    iri: str
    date: float
    price: Decimal
    inventory: int
    product: Product
    tickets: tuple[Ticket, ...]
    spec: ProductSpec

    @property
    def availability_check_required(self) -> bool:
        return self.spec.session_count > 0 or self.inventory < 100

    @property
    def seated(self) -> bool:
        return any(ticket.seated for ticket in self.tickets)


@dataclass(frozen=True)
class _Index:
    offers: dict[str, Offer]
    tickets: dict[str, tuple[Offer, Ticket]]
    sessions: dict[str, tuple[Offer, Ticket, Session]]
    forms: dict[str, Form]


def _build_index(offers: tuple[Offer, ...]) -> _Index:
    index = _Index({}, {}, {}, {})
    for offer in offers:
        index.offers[offer.iri] = offer
        for ticket in offer.tickets:
            index.tickets[ticket.iri] = (offer, ticket)
            if ticket.form is not None:
                index.forms[ticket.form.id] = ticket.form
            for session in ticket.sessions:
                index.sessions[session.iri] = (offer, ticket, session)
    return index


@dataclass(frozen=True)
class Catalog:
    """The whole seeded catalog, with lookups by IRI (read-only, shared by all threads)."""

    id: str
    iri: str
    name: str
    created_at: float
    organization_id: str
    offers: tuple[Offer, ...]
    _index: _Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", _build_index(self.offers))

    def offer(self, iri: str) -> Offer | None:
        return self._index.offers.get(iri)

    def ticket(self, iri: str) -> tuple[Offer, Ticket] | None:
        return self._index.tickets.get(iri)

    def session(self, iri: str) -> tuple[Offer, Ticket, Session] | None:
        return self._index.sessions.get(iri)

    def form(self, form_id: str) -> Form | None:
        return self._index.forms.get(form_id)


def build_catalog(seed: int = 0, now: float | None = None) -> Catalog:
    """The seeded catalog. Same `seed`, same ids; offers start 30 days after `now`."""
    rng = random.Random(seed)
    counter = iter(range(1_000_000))

    def new_id() -> str:
        return uuid7(rng, _ID_EPOCH_MS + next(counter))

    today = (int(now if now is not None else time.time()) // _DAY) * _DAY
    catalog_id = new_id()
    catalog_iri = f"/v1/ticketing/catalogs/{catalog_id}"
    organization_id = new_id()
    offers = []
    for position, spec in enumerate(PRODUCTS):
        offer_id = new_id()
        offer_iri = f"{catalog_iri}/offers/{offer_id}"
        date = float(today + (30 + position) * _DAY)
        product = Product(new_id(), spec.name, f"{spec.name} (Korus sandbox product)")
        tickets: list[Ticket] = []
        if spec.bundle:
            entry_id = new_id()
            tickets.append(
                Ticket(entry_id, f"{offer_iri}/tickets/{entry_id}", "Park entry", True, None, ())
            )
        ticket_id = new_id()
        ticket_iri = f"{offer_iri}/tickets/{ticket_id}"
        sessions = tuple(
            _session(new_id(), ticket_iri, date + (10 + 2 * slot) * 3600, spec.session_inventory)
            for slot in range(spec.session_count)
        )
        form = _form(new_id(), new_id()) if spec.form else None
        name = "Show" if spec.bundle else "Adult"
        seated = spec.seated or spec.bundle
        tickets.append(Ticket(ticket_id, ticket_iri, name, not sessions, form, sessions, seated))
        offers.append(
            Offer(
                offer_id,
                offer_iri,
                date,
                Decimal(spec.price),
                spec.inventory,
                product,
                tuple(tickets),
                spec,
            )
        )
    return Catalog(
        catalog_id,
        catalog_iri,
        CATALOG_NAME,
        float(_ID_EPOCH_MS // 1000),
        organization_id,
        tuple(offers),
    )


def _session(session_id: str, ticket_iri: str, starts_at: float, inventory: int) -> Session:
    return Session(
        session_id, f"{ticket_iri}/sessions/{session_id}", starts_at, starts_at + 7200, inventory
    )


def _form(form_id: str, field_id: str) -> Form:
    iri = f"/v1/forms/{form_id}"
    visitor = FormField(field_id, f"{iri}/fields/{field_id}", FORM_FIELD_LABEL, True)
    return Form(form_id, iri, "Visitor details", (visitor,))
