"""The booking id format, checked wherever an id arrives from outside.

`bk_` and 24 lower-case hex digits (service.new_booking_id). An id from a payment event
is checked against it before it touches a log line, a Redis key or a Sentry tag: `bk_}x{y`
would otherwise pick another Redis Cluster hash slot, a NUL would go raw into a log.
"""

from __future__ import annotations

import re

BOOKING_ID = re.compile(r"^bk_[0-9a-f]{24}$")


def is_booking_id(value: object) -> bool:
    return isinstance(value, str) and BOOKING_ID.fullmatch(value) is not None


def printable(value: object, limit: int = 80) -> str:
    """A log-safe rendering of untrusted text: visible ASCII kept, anything else escaped,
    cut at `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return "".join(c if "\x20" < c < "\x7f" else f"\\x{ord(c) & 0xFF:02x}" for c in text)
