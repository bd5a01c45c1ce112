"""Korus ids and IRIs: every resource is addressed by `@id` (`/v1/...`) and `id`."""

from __future__ import annotations

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
