"""`POST /webhooks/stripe` and `POST /webhooks/payments`: verified payment events.

Order of checks, each answered before the next is tried (nothing is enqueued unless all
pass): body size (413, from Content-Length, then while reading), content type (400, as
the webhook contract says), signature and timestamp on the raw bytes (400), JSON (400),
event shape (400). Then the event is recorded once by id
(`BookingService.record_payment`: Redis SET NX with a TTL, then the message goes to the
broker) and the answer says what happened:

| outcome                   | status | why                                               |
|---------------------------|--------|---------------------------------------------------|
| enqueued, cancelled       | 200    | acted on                                          |
| noted                     | 200    | a failed attempt: a timeline note, nothing else   |
| duplicate, ignored        | 200    | already handled / nothing to do: stop retrying    |
| unknown_booking           | 200    | alerted; a retry would not help                   |
| unknown type, no booking  | 200    | not ours to act on (logged)                       |
| in_progress               | 503    | first delivery still being handled: retry later   |
| Redis or broker down      | 503    | nothing acknowledged that is not on the broker    |

The handler never calls Korus and reads the body once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import falcon
from pydantic import BaseModel, Field

from worker.booking.requests import PaymentEvent
from worker.booking.service import IN_PROGRESS_SECONDS, BookingService, PaymentOutcome
from worker.http.body import parse_json, read_body, require_json
from worker.http.metrics import Metrics
from worker.http.payment_events import (
    PAYMENTS,
    STRIPE,
    Ignored,
    MalformedEventError,
    payments_event,
    stripe_event,
)
from worker.http.problems import (
    BAD_SIGNATURE,
    MALFORMED_EVENT,
    TOO_LARGE,
    UNAVAILABLE,
    UNAVAILABLE_ERRORS,
    UNSUPPORTED_MEDIA,
    ApiProblem,
)
from worker.http.signatures import SignatureError, StandardWebhooksVerifier, StripeVerifier
from worker.observability.logs import booking_context

log = logging.getLogger("booking.http.webhooks")

# Metric label of a delivery refused before its signature is checked.
_REFUSALS = {TOO_LARGE: "too_large", UNSUPPORTED_MEDIA: "unsupported_media_type"}

Outcome = Literal[
    "enqueued", "duplicate", "cancelled", "ignored", "noted", "unknown_booking", "in_progress"
]


class WebhookAck(BaseModel):
    """The 200 answer to a webhook delivery."""

    outcome: Outcome
    event_id: str = Field(alias="eventId")
    detail: str | None = None


def _ack(resp: falcon.Response, outcome: Outcome, event_id: str, detail: str | None) -> None:
    ack = WebhookAck(outcome=outcome, eventId=event_id, detail=detail)
    resp.status = 200
    resp.media = ack.model_dump(by_alias=True, exclude_none=True)


class _WebhookEndpoint:
    provider: str

    def __init__(self, service: BookingService, metrics: Metrics,
                 record: Callable[[PaymentEvent], PaymentOutcome] | None = None) -> None:
        self.service = service
        self.metrics = metrics
        # PaymentIngress.record (one round trip) or the service's own, same outcomes.
        self.record = record or service.record_payment

    def _count(self, outcome: str) -> None:
        self.metrics.webhooks.labels(self.provider, outcome).inc()

    def _refuse(self, outcome: str, problem: ApiProblem) -> ApiProblem:
        self._count(outcome)
        return problem

    def _verified_event(self, req: falcon.Request, body: bytes) -> PaymentEvent | Ignored:
        raise NotImplementedError

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Record a verified payment event once; see the module docstring for answers."""
        try:
            body = read_body(req)
            require_json(req, status=400)  # the webhooks contract: 400, not 415
        except ApiProblem as problem:
            outcome = _REFUSALS.get(problem.problem.type, "rejected")
            raise self._refuse(outcome, problem) from None
        try:
            event = self._verified_event(req, body)
        except SignatureError as error:
            log.warning("%s webhook refused: %s", self.provider, error)
            raise self._refuse(
                "bad_signature",
                ApiProblem(
                    400, type=BAD_SIGNATURE, title="Invalid webhook signature", detail=str(error)
                ),
            ) from None
        except MalformedEventError as error:
            raise self._refuse(
                "malformed",
                ApiProblem(400, type=MALFORMED_EVENT, title="Malformed event", detail=str(error)),
            ) from None
        except ApiProblem as problem:  # malformed JSON
            raise self._refuse("malformed", problem) from None
        if isinstance(event, Ignored):
            log.info(
                "%s event %s (%s) ignored: %s",
                self.provider,
                event.event_id,
                event.event_type,
                event.reason,
            )
            self._count(event.reason)
            _ack(resp, "ignored", event.event_id, event.reason)
            return
        with booking_context(event.booking_id):
            try:
                outcome = self.record(event)
            except UNAVAILABLE_ERRORS:
                self._count("unavailable")
                raise  # → 503 (problems.handle_unavailable); any other error is a 500
            self._count(outcome)
            log.info("%s event %s (%s): %s", self.provider, event.event_id, event.kind, outcome)
        if outcome == "in_progress":
            raise ApiProblem(
                503,
                type=UNAVAILABLE,
                title="Event being processed",
                detail="the first delivery of this event is still being handled; retry later",
                headers={"Retry-After": str(IN_PROGRESS_SECONDS)},
            )
        _ack(resp, outcome, event.event_id, None)


class StripeWebhook(_WebhookEndpoint):
    """`POST /webhooks/stripe`, signed with `Stripe-Signature` (any configured secret)."""

    provider = STRIPE

    def __init__(self, service: BookingService, metrics: Metrics, verifier: StripeVerifier,
                 record: Callable[[PaymentEvent], PaymentOutcome] | None = None) -> None:
        super().__init__(service, metrics, record)
        self.verifier = verifier

    def _verified_event(self, req: falcon.Request, body: bytes) -> PaymentEvent | Ignored:
        self.verifier.verify(body, req.get_header("Stripe-Signature"))
        return stripe_event(parse_json(body))


class StandardPaymentsWebhook(_WebhookEndpoint):
    """`POST /webhooks/payments`, signed per Standard Webhooks (any configured secret)."""

    provider = PAYMENTS

    def __init__(
        self, service: BookingService, metrics: Metrics, verifier: StandardWebhooksVerifier,
        record: Callable[[PaymentEvent], PaymentOutcome] | None = None,
    ) -> None:
        super().__init__(service, metrics, record)
        self.verifier = verifier

    def _verified_event(self, req: falcon.Request, body: bytes) -> PaymentEvent | Ignored:
        msg_id = req.get_header("webhook-id")
        self.verifier.verify(
            body, msg_id, req.get_header("webhook-timestamp"), req.get_header("webhook-signature")
        )
        assert msg_id is not None  # verify() refused a missing id
        return payments_event(msg_id, parse_json(body))


class UnconfiguredWebhook:
    """A provider without a configured secret: 503 so deliveries are retried, not lost."""

    def __init__(self, provider: str, variable: str, metrics: Metrics) -> None:
        self.provider = provider
        self.variable = variable
        self.metrics = metrics

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Refuse every delivery until the secret is configured (nothing is recorded)."""
        self.metrics.webhooks.labels(self.provider, "unconfigured").inc()
        raise ApiProblem(
            503,
            type=UNAVAILABLE,
            title="Webhook endpoint not configured",
            detail=f"{self.variable} is not set on this server",
            headers={"Retry-After": "300"},
        )
