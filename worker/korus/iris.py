"""Korus ids and IRIs: every resource is addressed by `@id` (`/v1/...`) and `id`."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

Ref = str | dict[str, Any]
"""An IRI, or the embedded resource when Korus inlines it."""


def iri_of(ref: Ref | None) -> str | None:
    """The IRI of a reference, whether Korus sent the IRI or the embedded object."""
    if isinstance(ref, dict):
        value = ref.get("@id")
        return str(value) if value is not None else None
    return ref


BLANK_NODE_PREFIXES = ("/.well-known/genid/", "_:")
_ORDER_TICKET = re.compile(
    r"^/v1/booking/orders/(?P<order>[^/?#]+)/items/(?P<item>[^/?#]+)/tickets/(?P<ticket>[^/?#]+)$"
)
_ORDER_ITEM = re.compile(r"^/v1/booking/orders/(?P<order>[^/?#]+)/items/(?P<item>[^/?#]+)$")


def is_blank_node(iri: str) -> bool:
    """A JSON-LD blank node (`/.well-known/genid/<hex>`): names nothing one can fetch."""
    path = urlsplit(iri).path if "://" in iri else iri
    return path.startswith(BLANK_NODE_PREFIXES)


def order_ticket_ids(iri: str | None) -> tuple[str, str, str] | None:
    """(order id, item id, ticket id) of a real order-ticket IRI; None for anything else
    (a blank node, another resource, a missing `@id`)."""
    if not iri:
        return None
    match = _ORDER_TICKET.fullmatch(urlsplit(iri).path if "://" in iri else iri)
    return (match["order"], match["item"], match["ticket"]) if match else None


def order_item_id(iri: str | None) -> str | None:
    """The item id of a real order-item IRI; None for a blank node or anything else."""
    if not iri:
        return None
    match = _ORDER_ITEM.fullmatch(urlsplit(iri).path if "://" in iri else iri)
    return match["item"] if match else None


def last_segment(id_or_iri: str) -> str:
    """`/v1/booking/orders/abc?x=1` -> `abc`; a bare id is returned unchanged."""
    path = urlsplit(id_or_iri).path.rstrip("/")
    return path.rsplit("/", 1)[-1]


def path_segment(id_or_iri: str) -> str:
    """The id of a resource given as id or IRI, quoted so it stays one path segment."""
    segment = last_segment(id_or_iri)
    if segment in ("", ".", ".."):
        raise ValueError(f"not a Korus id or IRI: {id_or_iri!r}")
    return quote(segment, safe="")


def reservation_iri(id_or_iri: str) -> str:
    return f"/v1/booking/reservations/{path_segment(id_or_iri)}"
