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


def payments(booking_id: str) -> str:
    """Set: keys of received successful payment events not yet applied to the booking."""
    return f"{PREFIX}:{{{booking_id}}}:payments"


def lock(booking_id: str, name: str) -> str:
    return f"{PREFIX}:{{{booking_id}}}:lock:{name}"


# Global indexes. The deadline index is written ahead of the record (see store.py):
# readers always re-check the record, so an entry can be stale but never missing. The
# listing index (by state) is written after it; the sweeper repairs a missed write.
DEADLINES = f"{PREFIX}:deadlines"
# Merchant callbacks due (a retry, a lapsed sending lease, a message maybe lost), scored
# by when; members are "<booking id>|<event type>".
CALLBACKS_DUE = f"{PREFIX}:callbacks:due"


def alive(owner: str) -> str:
    """A worker process's liveness key (renewed by worker.liveness while it runs)."""
    return f"{PREFIX}:alive:{owner}"


def by_state(state: str) -> str:
    return f"{PREFIX}:state:{state}"


def payment_event(event_id: str) -> str:
    return f"{PREFIX}:event:{event_id}"


def idempotency(merchant: str, key: str) -> str:
    return f"{PREFIX}:idem:{merchant}:{key}"
