"""The one entry point shared by the HTTP front, the CLI and the demo.

No method here calls Korus: they write Redis and put messages on the broker, so the web
process stays fast and a Korus outage never blocks a webhook.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import redis

from worker.alerts import alert
from worker.booking import keys
from worker.booking.effects import Enqueuer, after_transition, send_driver
from worker.booking.payment import cancel as cancel_transition
from worker.booking.payment import cancel_event, failed_attempt
from worker.booking.record import Booking, Payment, PaymentEventRecord, TimelineEntry, utcnow
from worker.booking.requests import BookingRequest, PaymentEvent
from worker.booking.states import DRIVER, State
from worker.booking.store import BookingStore, Change, PaymentWaitingError, UpdateResult
from worker.booking.task_names import DriverTask, TaskName

IDEMPOTENCY_TTL = int(timedelta(hours=24).total_seconds())
# A claimed Idempotency-Key whose booking is still missing after this long was abandoned.
IDEMPOTENCY_ABANDONED_SECONDS = 30
_TAKE_OVER_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""

PaymentOutcome = Literal[
    "enqueued", "duplicate", "in_progress", "unknown_booking", "cancelled", "ignored", "noted"
]
# A first delivery that has not confirmed its enqueue within this time is presumed dead
# (its process crashed): a retry of the event then enqueues it again.
IN_PROGRESS_SECONDS = 10


class BookingNotFoundError(LookupError):
    pass


class BookingConflictError(RuntimeError):
    """The request is valid but the booking's state does not allow it (HTTP 409)."""


class IdempotencyKeyInProgressError(RuntimeError):
    """The first request with this Idempotency-Key has not finished yet: no booking to
    return so far (HTTP 409 with Retry-After; the client sends the request again)."""


class IdempotencyConflictError(ValueError):
    """Same Idempotency-Key, different body (HTTP 422)."""


@dataclass
class StartResult:
    booking: Booking
    created: bool


def parse_cursor(cursor: str | None) -> tuple[float, str] | None:
    """(score, id) from a listing cursor; ValueError if it is not one of ours."""
    if cursor is None:
        return None
    score, sep, booking_id = cursor.partition(":")
    value = float(score)
    if not sep or not booking_id or not math.isfinite(value):
        raise ValueError("not a listing cursor")
    return value, booking_id


def request_digest(body: str) -> str:
    """The SHA-256 of a request body in base64, unpadded (43 characters; 64 in hex)."""
    return base64.b64encode(hashlib.sha256(body.encode()).digest()).decode().rstrip("=")


def idempotency_claim(booking_id: str, digest: str, at: float) -> str:
    """What an Idempotency-Key holds (for 24 h): the booking it makes, the request body's
    digest and when it was claimed; compact, it is kept for every such booking."""
    return json.dumps(
        {"booking_id": booking_id, "digest": digest, "at": round(at, 3)}, separators=(",", ":")
    )


def event_claim(event: PaymentEvent, *, enqueued: bool) -> PaymentEventRecord:
    """The record that claims a verified provider event by its id (`keys.payment_event`),
    received now; written by `record_payment` and by the web front's one-script ingress."""
    payment = Payment(
        provider=event.provider,
        event_id=event.event_id,
        payment_id=event.payment_id,
        amount_minor=event.amount_minor or 0,
        currency=(event.currency or "").lower(),
        received_at=utcnow(),
    )
    return PaymentEventRecord(
        booking_id=event.booking_id,
        kind=event.kind,
        payment=payment,
        enqueued=enqueued,
        recorded_at=time.time(),
    )


def new_booking_id() -> str:
    # 96 random bits as 24 hex chars: unique, URL-safe, well under Korus's 50-char
    # externalReference limit (the booking id is the Korus order externalReference).
    return "bk_" + secrets.token_hex(12)


class BookingService:
    def __init__(
        self,
        store: BookingStore,
        enqueue: Enqueuer,
        *,
        event_ttl_seconds: int,
        policy: str,
        redrive_after_seconds: float = 25.0,
    ) -> None:
        self.store = store
        self.redrive_after_seconds = redrive_after_seconds
        self.redis: redis.Redis = store.redis
        self.enqueue = enqueue
        self.event_ttl_seconds = event_ttl_seconds
        self.policy = policy
        self._take_over = self.redis.register_script(_TAKE_OVER_SCRIPT)

    # -- bookings ------------------------------------------------------------
    def start_booking(
        self,
        request: BookingRequest,
        *,
        merchant: str = "default",
        idempotency_key: str | None = None,
    ) -> StartResult:
        """Create a booking and enqueue its reservation.

        With an `idempotency_key`, the same key and body return the same booking; the same
        key with another body raises IdempotencyConflictError, and while the first request
        with that key has not finished, IdempotencyKeyInProgressError. Nothing is written when
        validation fails (the request model is already validated).
        """
        booking_id = new_booking_id()
        if idempotency_key is not None:
            existing = self._claim_idempotency(merchant, idempotency_key, request, booking_id)
            if existing is not None:
                return StartResult(existing, created=False)
        now = utcnow()
        booking = Booking(
            id=booking_id,
            external_reference=request.external_reference,
            merchant=merchant,
            created_at=now,
            updated_at=now,
            items=request.items,
            customer=request.customer,
            beneficiaries=request.beneficiaries,
            callback_url=request.callback_url,
            language=request.language,
            policy=request.reservation_policy or self.policy,
        )
        self.store.create(booking, reason="booking received")
        # If this enqueue is lost (broker down), the sweeper finds the booking stuck in
        # `received` and enqueues it again.
        self.enqueue.reserve(booking.id)
        return StartResult(booking, created=True)

    def _claim_idempotency(
        self, merchant: str, key: str, request: BookingRequest, booking_id: str
    ) -> Booking | None:
        """Claim `key` for a new booking, or return the booking it already made.

        A claim whose booking never appeared (its process died between the claim and the
        write) is taken over after IDEMPOTENCY_ABANDONED_SECONDS, by compare-and-set so
        that two retries cannot both take it.
        """
        body = json.dumps(request.model_dump(mode="json", by_alias=True), sort_keys=True)
        digest = request_digest(body)
        record = idempotency_claim(booking_id, digest, time.time())
        redis_key = keys.idempotency(merchant, key)
        if self.redis.set(redis_key, record, nx=True, ex=IDEMPOTENCY_TTL):
            return None
        raw = self.redis.get(redis_key) or "{}"
        stored = json.loads(raw)
        # Claims written before the digest was base64 hold it in hex.
        if stored.get("digest") not in (digest, hashlib.sha256(body.encode()).hexdigest()):
            raise IdempotencyConflictError("Idempotency-Key was used with another request body")
        existing = self.store.load(stored["booking_id"])
        if existing is not None:
            return existing
        if time.time() - float(stored.get("at", 0)) < IDEMPOTENCY_ABANDONED_SECONDS:
            raise IdempotencyKeyInProgressError(
                "the first request with this key is still being processed"
            )
        if self._take_over(keys=[redis_key], args=[raw, record, IDEMPOTENCY_TTL]):
            return None
        raise IdempotencyKeyInProgressError("another request with this key is being processed")

    def get(self, booking_id: str) -> Booking:
        booking = self.store.load(booking_id)
        if booking is None:
            raise BookingNotFoundError(booking_id)
        return booking

    def timeline(self, booking_id: str) -> list[TimelineEntry]:
        self.get(booking_id)
        return self.store.timeline(booking_id)

    def list(
        self, state: State, *, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[Booking], str | None]:
        """A page of bookings in `state`, oldest first, and the cursor of the next page.

        Cursors are opaque strings returned by this method; a malformed one raises
        ValueError.
        """
        rows = self.store.ids_in_state(state, after=parse_cursor(cursor), limit=limit)
        bookings = [b for b in self.store.load_many(i for i, _ in rows) if b.state == state]
        if len(rows) < limit:
            return bookings, None
        last_id, last_score = rows[-1]
        return bookings, f"{last_score!r}:{last_id}"

    def cancel(self, booking_id: str, reason: str = "cancelled by the merchant") -> Booking:
        """Cancel before payment. Idempotent: cancelling a cancelled booking returns it.

        Refused (409) once a payment succeeded, even if it is not applied yet."""
        result, waiting = self._cancel_unless_paid(
            booking_id, lambda b, waiting: cancel_transition(b, reason, success_waiting=waiting)
        )
        booking = result.booking
        if booking is None:
            raise BookingNotFoundError(booking_id)
        if booking.state != State.CANCELLED:
            paid = waiting or booking.pending_payment or booking.payment
            why = "it is paid" if paid else f"it is {booking.state}"
            raise BookingConflictError(f"the booking cannot be cancelled: {why}")
        after_transition(booking, result.entered, self.enqueue)
        return booking

    def _cancel_unless_paid(
        self, booking_id: str, transition: Callable[[Booking, bool], Change | None]
    ) -> tuple[UpdateResult, bool]:
        """Apply a cancel transition (`transition(booking, success_waiting)`) so that no
        successful payment event received and not yet applied can be missed: decided as
        if none waits, its compare-and-set is refused by Redis if one does (checked in
        the same script), and then it is decided again knowing that one does. Returns the
        result and whether a success was found waiting."""
        try:
            result = self.store.update(
                booking_id, lambda b: transition(b, False), unless_payment_waiting=True
            )
        except PaymentWaitingError:
            return self.store.update(booking_id, lambda b: transition(b, True)), True
        return result, False

    def retry(self, booking_id: str) -> DriverTask:
        """Operator action: enqueue again the task that drives the booking's state."""
        booking = self.get(booking_id)
        state = booking.state
        if state not in DRIVER:
            raise BookingConflictError(f"nothing to retry in state {state}")
        urgent = DRIVER[state] is TaskName.CREATE_ORDER
        return send_driver(booking_id, state, self.enqueue, urgent=urgent)

    def refresh_documents(self, booking_id: str) -> Booking:
        booking = self.get(booking_id)
        if booking.state != State.COMPLETED:
            raise BookingConflictError("documents can be refreshed once the booking is completed")
        self.enqueue.fetch_documents(booking_id, refresh=True)
        return booking

    # -- payments ------------------------------------------------------------
    def record_payment(self, event: PaymentEvent) -> PaymentOutcome:
        """Record a verified provider event once (by event id) and act on it.

        Returns after the message is on the broker. A repeated event id is a no-op
        ("duplicate"); while its first delivery is still being handled it is
        "in_progress" (the web answers 503 so the provider retries); if that first
        delivery never confirmed its enqueue, it is enqueued again (the task dedupes by
        payment id).
        """
        redis_key = keys.payment_event(event.key)
        record = event_claim(event, enqueued=False)
        # Claim the event id and learn whether the booking exists; a success claimed is
        # also kept on the booking until applied (the sweeper applies it if the message
        # is lost, a redrive period from now at the latest): one round trip together.
        due = time.time() + self.redrive_after_seconds
        claimed, exists = self.store.claim_payment_event(
            event.key,
            event.booking_id,
            record.model_dump_json(),
            self.event_ttl_seconds,
            success_due=due if event.kind == "succeeded" else None,
        )
        if not claimed:
            found = self.store.payment_event(event.key)
            if found is None or found[1].enqueued:
                return "duplicate"  # (gone: its TTL ran out, long after it was handled)
            raw, stored = found
            if time.time() - stored.recorded_at < IN_PROGRESS_SECONDS:
                return "in_progress"  # the first delivery is still being handled
            # Take the abandoned delivery over by compare-and-set: of two retries racing
            # here, one enqueues and the other is told to come back.
            record.recorded_at = time.time()
            took = self._take_over(
                keys=[redis_key], args=[raw, record.model_dump_json(), self.event_ttl_seconds]
            )
            if not took:
                return "in_progress"
        outcome: PaymentOutcome
        if not exists:
            alert("unknown_booking", event.booking_id, f"{event.provider} event {event.event_id}")
            outcome = "unknown_booking"
        elif event.kind == "succeeded":
            if not claimed:  # taken over from an abandoned delivery: keep it now
                self.store.payment_received(
                    event.booking_id, event.key, due=due, ttl_seconds=self.event_ttl_seconds
                )
            self.enqueue.payment_succeeded(event.booking_id, event.key)
            outcome = "enqueued"
        elif event.kind == "failed":
            what = f"{event.provider} {event.payment_id}"
            self.store.update(event.booking_id, lambda b: failed_attempt(b, what))
            outcome = "noted"
        else:
            what = f"{event.provider} {event.payment_id}"
            result, _ = self._cancel_unless_paid(
                event.booking_id, lambda b, waiting: cancel_event(b, what, success_waiting=waiting)
            )
            if result.booking is not None:
                after_transition(result.booking, result.entered, self.enqueue)
            cancelled = result.booking is not None and result.booking.state == State.CANCELLED
            outcome = "cancelled" if cancelled else "ignored"
        record.enqueued = True
        self.redis.set(redis_key, record.model_dump_json(), xx=True, keepttl=True)
        return outcome
