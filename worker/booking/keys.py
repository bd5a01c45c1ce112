"""Redis key names. Keys of one booking share the hash tag `{booking_id}` (Redis Cluster)."""

from __future__ import annotations

PREFIX = "bw"


def booking(booking_id: str) -> str:
    return f"{PREFIX}:{{{booking_id}}}:booking"


def timeline(booking_id: str) -> str:
    return f"{PREFIX}:{{{booking_id}}}:timeline"


def callbacks(booking_id: str) -> str:
    """Hash: callback event type -> delivery status (kept apart from the record's version)."""
    return f"{PREFIX}:{{{booking_id}}}:callbacks"


def lock(booking_id: str, name: str) -> str:
    return f"{PREFIX}:{{{booking_id}}}:lock:{name}"


# Global indexes. They are hints written ahead of the record (see store.py): readers
# always re-check the record, so an index entry can be stale but never missing.
DEADLINES = f"{PREFIX}:deadlines"


def by_state(state: str) -> str:
    return f"{PREFIX}:state:{state}"


def payment_event(event_id: str) -> str:
    return f"{PREFIX}:event:{event_id}"


def idempotency(merchant: str, key: str) -> str:
    return f"{PREFIX}:idem:{merchant}:{key}"
