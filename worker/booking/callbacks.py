"""Merchant callbacks (booking.notify): signed per the Standard Webhooks spec.

A callback never blocks or undoes a booking: it is sent after the state changed, from its
own queue, and its delivery is tracked apart from the booking record (its own hash, one
JSON record per event type) so a slow merchant never conflicts with the booking's
compare-and-set. Each attempt holds a numbered claim with a lease; failed attempts are
retried with backoff (`callback_delay`, spanning about 30 h with the default 8 attempts)
from the callbacks-due index in Redis, which the sweeper drives, and the last failure
raises the `callback_failed` alert. Delivery is at least once: a (booking, event type) recorded as
delivered is not sent again, but two copies of a message racing (a retry, a redelivery)
may both send it. The message id is stable, so the merchant dedupes on `webhook-id`. The
body (worker.booking.views.callback_body) is built from the record at sending time, so a
late event carries the latest state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

from worker.alerts import alert
from worker.booking import callback_transport
from worker.booking.context import RetryLater, StepContext
from worker.booking.views import callback_body
from worker.settings import whsec_key

log = logging.getLogger("booking.callbacks")


class CallbackFailedError(Exception):
    """The merchant endpoint did not take the callback (retried with backoff)."""


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`; secret is `whsec_<base64>`."""
    key = whsec_key(secret)
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


FINISHED = frozenset({"delivered", "failed", "refused", "no callback url", "unknown booking"})


def callback_delay(attempt: int, base: float, cap: float) -> float:
    """Wait after the `attempt`-th failed attempt: base * 4^(attempt-1), capped."""
    return float(min(cap, base * 4 ** (attempt - 1)))


def schedule_span(attempts: int, base: float, cap: float) -> float:
    """Seconds between the first and the last of `attempts` attempts."""
    return sum(callback_delay(n, base, cap) for n in range(1, attempts))


def _parse(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if not raw.startswith("{"):
        return {"status": raw}  # records written before delivery records were JSON
    return dict(json.loads(raw))


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    policy: callback_transport.TargetPolicy,
    timeout: float,
) -> None:
    """The HTTP send of one callback, SSRF-safe (worker.booking.callback_transport: https
    only, public addresses only, the checked address connected, no redirects).

    CallbackFailedError (retried) unless the merchant took it; TargetRefusedError (final)
    when the target may not be called at all.
    """
    try:
        response = callback_transport.post(url, body, headers, policy=policy, timeout=timeout)
    except callback_transport.TargetRefusedError:
        raise
    except callback_transport.CallbackTransportError as error:
        raise CallbackFailedError(f"merchant unreachable: {error}") from error
    if not 200 <= response.status < 300:
        raise CallbackFailedError(f"merchant answered {response.status}")


def deliver(ctx: StepContext, booking_id: str, event_type: str, task_id: str | None = None) -> str:
    """Send one callback attempt under a numbered, leased claim; returns what happened.

    Each attempt counts against `CALLBACK_MAX_ATTEMPTS`; a failed attempt schedules the
    next one in Redis (callbacks-due index, `callback_delay`), and the last one raises
    the `callback_failed` alert. A second message for a callback being sent (live lease)
    or not yet due does nothing. Never raises for a merchant failure.
    """
    settings = ctx.settings
    now = ctx.now().timestamp()
    # The delivery record and the booking in one round trip (the booking is only needed
    # when the callback is to be sent, the common case).
    raw, booking = ctx.store.callback_and_booking(booking_id, event_type)
    record = _parse(raw)
    status = record.get("status")
    if status in FINISHED:
        if raw is not None and raw.startswith("{"):
            ctx.store.callback_swap(booking_id, event_type, raw, raw, due=None)
        return f"already {status}"
    if status == "sending" and record.get("task_id") != task_id:
        if float(record.get("lease_until", 0)) > now and ctx.owner_alive(record.get("owner")):
            return "being sent by another task"
    if status == "retry" and float(record.get("next_at", 0)) > now + settings.countdown_max_seconds:
        return "not due yet"
    if booking is None:
        ctx.store.callback_swap(
            booking_id, event_type, raw, _dump({"status": "unknown booking"}), due=None
        )
        return "unknown booking"
    url = booking.callback_url or settings.callback_url
    if not url:
        ctx.store.callback_swap(
            booking_id, event_type, raw, _dump({"status": "no callback url"}), due=None
        )
        return "no callback url"
    attempt = int(record.get("attempts", 0)) + 1
    if attempt > settings.callback_max_attempts:
        return _fail(ctx, booking_id, event_type, raw, record, "attempts exhausted")
    lease_until = now + 2 * settings.callback_timeout_seconds + 10
    sending = _dump(
        {
            "status": "sending",
            "attempts": attempt,
            "task_id": task_id,
            "owner": ctx.owner(),
            "lease_until": lease_until,
        }
    )
    if not ctx.store.callback_swap(booking_id, event_type, raw, sending, due=lease_until):
        return "raced: another task took this callback"
    timestamp = int(time.time())
    body = json.dumps(
        callback_body(booking, event_type, timestamp).json_value(), separators=(",", ":")
    )
    msg_id = f"msg_{booking_id}_{event_type}"
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    secret = settings.callback_secret
    if secret is not None:
        headers["webhook-signature"] = sign(secret.get_secret_value(), msg_id, timestamp, body)
    try:
        post(
            url,
            body.encode(),
            headers,
            policy=settings.callback_policy,
            timeout=settings.callback_timeout_seconds,
        )
    except callback_transport.TargetRefusedError as refused:
        # Final: retrying would hit the same refusal. Recorded and alerted, never sent.
        final = _dump({"status": "refused", "attempts": attempt, "error": str(refused)})
        if ctx.store.callback_swap(booking_id, event_type, sending, final, due=None):
            alert("callback_refused", booking_id, f"{event_type} not sent: {refused}")
        return "refused"
    except CallbackFailedError as error:
        failed = {"attempts": attempt, "error": f"{event_type}: {error}"}
        if attempt >= settings.callback_max_attempts:
            return _fail(ctx, booking_id, event_type, sending, failed, str(error))
        delay = callback_delay(
            attempt, settings.callback_backoff_base_seconds, settings.callback_backoff_cap_seconds
        )
        retry = _dump({**failed, "status": "retry", "next_at": now + delay})
        ctx.store.callback_swap(booking_id, event_type, sending, retry, due=now + delay)
        log.warning(
            "callback %s booking=%s attempt %d failed (%s); next in %.0fs",
            event_type,
            booking_id,
            attempt,
            error,
            delay,
        )
        if delay <= settings.countdown_max_seconds:
            raise RetryLater(f"callback attempt {attempt} failed", delay) from None
        return "retry scheduled"
    delivered = _dump({"status": "delivered", "attempts": attempt})
    ctx.store.callback_swap(booking_id, event_type, sending, delivered, due=None)
    return "delivered"


def _fail(
    ctx: StepContext,
    booking_id: str,
    event_type: str,
    raw: str | None,
    record: dict[str, Any],
    why: str,
) -> str:
    attempts = int(record.get("attempts", 0))
    final = _dump({"status": "failed", "attempts": attempts, "error": record.get("error", why)})
    if ctx.store.callback_swap(booking_id, event_type, raw, final, due=None):
        alert(
            "callback_failed",
            booking_id,
            f"{event_type} not delivered after {attempts} attempts: {why}",
            event_type=event_type,
        )
    return "failed"
