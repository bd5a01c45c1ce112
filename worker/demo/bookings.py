"""The demo's booking requests: a mix of products discovered through the sandbox catalog.

Bodies are built by the booking request rule (design.md, korus-api.md): `quantity`
counts offers, and `ticketSessions` holds, for each unit, one entry per ticket of the
offer, in the offer's ticket order; a ticket with sessions gets one chosen. So an offer
of one ticket takes `quantity` entries, and a bundle of two tickets `2 * quantity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Seeded products that complete without help (see korus_sandbox/catalog.py); the
# others are left out on purpose: "Limited Concert" has 5 seats, "Broken Subsystem Ride"
# always fails.
DAY_PASS = "Day Pass"  # noqa: S105 - a product name
TIMED_ENTRY = "Timed Museum Entry"
NAMED_PASS = "Named Festival Pass"  # noqa: S105 - a product name
LATE_DOCUMENTS = "Late Documents Tour"
WITH_FORM = "Guided Tour With Form"
SIMPLE_PRODUCTS = (DAY_PASS, TIMED_ENTRY, NAMED_PASS, LATE_DOCUMENTS, WITH_FORM)
# Quantity per product (others: 1), so that both "several units" and "several tickets
# per unit" (bundles) appear in the mix.
QUANTITY = {DAY_PASS: 2}

CUSTOMER = {"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com"}
BENEFICIARY = {"firstname": "Ada", "lastname": "Lovelace", "dateOfBirth": "1990-12-10"}


@dataclass(frozen=True)
class Product:
    """A catalog offer the demo sells: its name and one request item per booking."""

    name: str
    offer: str
    tickets: tuple[str, ...]
    sessions: dict[str, str]  # ticket → the session chosen for it
    form: dict[str, Any] | None
    beneficiary: bool

    @property
    def bundle(self) -> bool:
        return len(self.tickets) > 1

    def item(self, quantity: int) -> dict[str, Any]:
        entries = []
        for _ in range(quantity):
            for ticket in self.tickets:
                entry: dict[str, Any] = {"ticket": ticket}
                if ticket in self.sessions:
                    entry["session"] = self.sessions[ticket]
                if self.form is not None:
                    entry["formData"] = self.form
                entries.append(entry)
        return {"offer": self.offer, "quantity": quantity, "ticketSessions": entries}


def _sessions_by_ticket(tickets: list[str], sessions: list[str]) -> dict[str, str]:
    """The first session of each ticket that has some. The sandbox catalog lists an
    offer's sessions flat; a session's IRI lies under its ticket's, as in Korus's own
    answers (`{ticket}/sessions/{id}`, ../shared/korus-examples)."""
    chosen: dict[str, str] = {}
    for ticket in tickets:
        own = [s for s in sessions if s.startswith(f"{ticket}/")]
        if own:
            chosen[ticket] = own[0]
    if not chosen and sessions and len(tickets) == 1:
        chosen[tickets[0]] = sessions[0]
    return chosen


def _product(name: str, entry: dict[str, Any]) -> Product:
    tickets = [str(t) for t in entry.get("tickets", [])]
    form = None
    # The catalog names one form per offer, not which ticket asks for it: use it on
    # single-ticket offers only.
    if entry.get("form") and entry.get("form_fields") and len(tickets) == 1:
        fields = [{"field": f, "value": "Lovelace"} for f in entry["form_fields"]]
        form = {"form": entry["form"], "fields": fields}
    return Product(
        name=name,
        offer=str(entry["offer"]),
        tickets=tuple(tickets),
        sessions=_sessions_by_ticket(tickets, [str(s) for s in entry.get("sessions", [])]),
        form=form,
        beneficiary=name == NAMED_PASS,
    )


def demo_products(catalog: dict[str, dict[str, Any]]) -> list[Product]:
    """The simple products present in the catalog, then every bundle offer (more than
    one ticket). Raises ValueError when the late-documents product is missing."""
    if LATE_DOCUMENTS not in catalog:
        raise ValueError(f"the sandbox catalog has no {LATE_DOCUMENTS!r} product")
    products = [_product(name, catalog[name]) for name in SIMPLE_PRODUCTS if name in catalog]
    products += [
        _product(name, entry)
        for name, entry in sorted(catalog.items())
        if name not in SIMPLE_PRODUCTS and len(entry.get("tickets", [])) > 1
    ]
    return products


def booking_body(product: Product, reference: str) -> dict[str, Any]:
    """`POST /v1/bookings` body of one booking of `product`."""
    quantity = QUANTITY.get(product.name, 1)
    item = product.item(quantity)
    body: dict[str, Any] = {
        "externalReference": reference,
        "items": [item],
        "customer": CUSTOMER,
    }
    if product.beneficiary:
        body["beneficiaries"] = [BENEFICIARY for _ in item["ticketSessions"]]
    return body


def demo_bodies(
    catalog: dict[str, dict[str, Any]], count: int, run_id: str
) -> list[tuple[Product, dict[str, Any]]]:
    """`count` bookings cycling through the demo products (each at least once when
    `count` allows); external references `DEMO-<run>-<n>`."""
    products = demo_products(catalog)
    return [
        (product, booking_body(product, f"DEMO-{run_id}-{index:05d}"))
        for index in range(count)
        for product in [products[index % len(products)]]
    ]
