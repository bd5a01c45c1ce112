"""Operator alerts: a log line at ERROR and a Sentry event fingerprinted per booking+kind.

Alerts never carry customer personal data: only ids, states, amounts and reasons.
"""

from __future__ import annotations

import logging
from typing import Any

import sentry_sdk

log = logging.getLogger("booking.alerts")


def alert(kind: str, booking_id: str | None, message: str, **context: Any) -> None:
    """Raise an operator alert. Repeated alerts of one kind for one booking group together."""
    log.error(
        "ALERT %s booking=%s: %s",
        kind,
        booking_id,
        message,
        extra={"alert_kind": kind, "booking_id": booking_id, **context},
    )
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["booking-alert", kind, booking_id or "-"]
        scope.set_tag("alert_kind", kind)
        if booking_id:
            scope.set_tag("booking_id", booking_id)
        for key, value in context.items():
            scope.set_extra(key, value)
        sentry_sdk.capture_message(f"{kind}: {message}", level="error")
