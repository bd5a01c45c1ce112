"""Payment webhooks through gunicorn: what the official libraries sign is accepted once,
everything else is refused with nothing enqueued."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import requests

from tests.http.helpers import (
    PAYMENTS_OLD_SECRET,
    PAYMENTS_SECRET,
    STRIPE_OLD_SECRET,
    STRIPE_SECRET,
    WebServer,
    broker_messages,
    held_booking,
    payment_intent,
    payments_body,
    payments_headers,
    problem,
    store_for,
    stripe_body,
    stripe_headers,
    tasks_for,
)
from worker.booking import keys
from worker.booking.record import Payment, PaymentEventRecord, utcnow
from worker.booking.service import new_booking_id
from worker.booking.states import State
from worker.booking.task_names import TaskName


@dataclass(frozen=True)
class Provider:
    """One webhook endpoint: how to build a signed delivery of a payment event."""

    name: str
    path: str
    secret: str
    old_secret: str
    sign: Callable[..., dict[str, str]]
    succeeded: Callable[[str | None, str], bytes]
    failed: Callable[[str, str], bytes]
    canceled: Callable[[str, str], bytes]
    unknown_type: Callable[[str], bytes]

    def deliver(
        self, web: WebServer, body: bytes, headers: dict[str, str]
    ) -> requests.Response:
        return requests.post(self.url(web), data=body, headers=headers, timeout=10)

    def send(self, web: WebServer, body: bytes, event_id: str) -> requests.Response:
        """`body` as the provider delivers it: signed with the current secret."""
        return self.deliver(web, body, self.sign(body, event_id))

    def url(self, web: WebServer) -> str:
        return web.url + self.path

    def event_key(self, event_id: str) -> str:
        return keys.payment_event(f"{self.name}:{event_id}")


def _stripe_sign(body: bytes, event_id: str, secret: str = STRIPE_SECRET,
                 timestamp: int | None = None) -> dict[str, str]:
    return stripe_headers(body, secret, timestamp)


def _payments_sign(body: bytes, event_id: str, secret: str = PAYMENTS_SECRET,
                   timestamp: int | None = None) -> dict[str, str]:
    return payments_headers(body, event_id, secret, timestamp)


STRIPE = Provider(
    name="stripe",
    path="/webhooks/stripe",
    secret=STRIPE_SECRET,
    old_secret=STRIPE_OLD_SECRET,
    sign=_stripe_sign,
    succeeded=lambda booking_id, event_id: stripe_body(
        "payment_intent.succeeded", payment_intent(booking_id), event_id
    ),
    failed=lambda booking_id, event_id: stripe_body(
        "payment_intent.payment_failed",
        payment_intent(booking_id, status="requires_payment_method"),
        event_id,
    ),
    canceled=lambda booking_id, event_id: stripe_body(
        "payment_intent.canceled", payment_intent(booking_id, status="canceled"), event_id
    ),
    unknown_type=lambda event_id: stripe_body("customer.created", {"id": "cus_1"}, event_id),
)
PAYMENTS = Provider(
    name="payments",
    path="/webhooks/payments",
    secret=PAYMENTS_SECRET,
    old_secret=PAYMENTS_OLD_SECRET,
    sign=_payments_sign,
    succeeded=lambda booking_id, event_id: payments_body(
        "payment.succeeded",
        **({} if booking_id is None else {"booking_id": booking_id}),
        payment_id=f"pay_{event_id}",
        amount=4250,
        currency="EUR",
    ),
    failed=lambda booking_id, event_id: payments_body(
        "payment.failed", booking_id=booking_id, payment_id=f"pay_{event_id}"
    ),
    canceled=lambda booking_id, event_id: payments_body(
        "payment.canceled", booking_id=booking_id, payment_id=f"pay_{event_id}"
    ),
    unknown_type=lambda event_id: payments_body("refund.created", refund_id="r1"),
)
PROVIDERS = pytest.mark.parametrize("provider", [STRIPE, PAYMENTS], ids=lambda p: p.name)


def new_event_id(provider: Provider) -> str:
    return f"evt_{provider.name}_{time.time_ns()}"


def outcome(response: requests.Response) -> str:
    """The outcome of a delivery the endpoint acknowledged (a 200)."""
    assert response.status_code == 200, response.text
    return str(response.json()["outcome"])


def state_of(db: redis.Redis, booking_id: str) -> State:
    stored = store_for(db).load(booking_id)
    assert stored is not None
    return stored.state


def last_reason(db: redis.Redis, booking_id: str) -> str:
    return str(store_for(db).timeline(booking_id)[-1]["reason"])


def left_by_a_first_delivery(
    db: redis.Redis, provider: Provider, event_id: str, booking_id: str, recorded_at: float
) -> None:
    """The claim record_payment writes (SET NX) before it enqueues, as a first delivery
    of `event_id` leaves it while in flight or when it died before its enqueue."""
    payment = Payment(provider=provider.name, event_id=event_id, payment_id=f"pi_{event_id}",
                      amount_minor=4250, currency="eur", received_at=utcnow())
    record = PaymentEventRecord(booking_id=booking_id, kind="succeeded", payment=payment,
                                enqueued=False, recorded_at=recorded_at)
    db.set(provider.event_key(event_id), record.model_dump_json(), ex=60)


def _change_timestamp(headers: dict[str, str]) -> dict[str, str]:
    changed = dict(headers)
    if "Stripe-Signature" in changed:
        t, rest = changed["Stripe-Signature"].split(",", 1)
        changed["Stripe-Signature"] = f"t={int(t[2:]) + 1},{rest}"
    else:
        changed["webhook-timestamp"] = str(int(changed["webhook-timestamp"]) + 1)
    return changed


def _drop_signature(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in ("Stripe-Signature", "webhook-signature")}


@PROVIDERS
def test_a_signed_payment_is_enqueued_once_and_its_repeats_are_duplicates(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    booking = held_booking(db)
    event_id = new_event_id(provider)
    body = provider.succeeded(booking.id, event_id)

    first = provider.send(web, body, event_id)
    again = provider.send(web, body, event_id)

    assert first.status_code == 200, first.text
    assert first.json() == {"outcome": "enqueued", "eventId": event_id}
    assert outcome(again) == "duplicate"
    messages = tasks_for(db, booking.id, TaskName.PAYMENT_SUCCEEDED)
    assert [(m.queue.split(":")[0], m.args) for m in messages] == [
        ("payments", [booking.id, f"{provider.name}:{event_id}"])
    ]
    recorded = json.loads(db.get(provider.event_key(event_id)) or "{}")
    assert recorded["enqueued"] is True and recorded["payment"]["amount_minor"] == 4250
    assert recorded["payment"]["currency"] == "eur"


@PROVIDERS
def test_the_previous_secret_is_accepted_during_rotation(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    booking = held_booking(db)
    event_id = new_event_id(provider)
    body = provider.succeeded(booking.id, event_id)

    response = provider.deliver(web, body, provider.sign(body, event_id, provider.old_secret))

    assert outcome(response) == "enqueued"
    assert len(tasks_for(db, booking.id, TaskName.PAYMENT_SUCCEEDED)) == 1


Delivery = tuple[bytes, dict[str, str]]
OTHER_SECRET = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUE="


def _signed_at(skew: int) -> Callable[[bytes, dict[str, str], Provider, str], Delivery]:
    return lambda b, h, p, e: (b, p.sign(b, e, timestamp=int(time.time()) + skew))


TAMPERINGS: dict[str, Callable[[bytes, dict[str, str], Provider, str], Delivery]] = {
    "one body byte changed": lambda b, h, p, e: (b.replace(b"4250", b"4251", 1), h),
    "timestamp changed": lambda b, h, p, e: (b, _change_timestamp(h)),
    "wrong secret": lambda b, h, p, e: (b, p.sign(b, e, OTHER_SECRET)),
    "signature header missing": lambda b, h, p, e: (b, _drop_signature(h)),
    "timestamp beyond tolerance": _signed_at(-301),
    "timestamp in the future": _signed_at(+301),
    "no headers at all": lambda b, h, p, e: (b, {"Content-Type": "application/json"}),
}


@PROVIDERS
@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_a_tampered_delivery_is_refused_and_nothing_is_enqueued(
    web: WebServer, db: redis.Redis, provider: Provider, tampering: str
) -> None:
    booking = held_booking(db)
    event_id = new_event_id(provider)
    body = provider.succeeded(booking.id, event_id)
    body, headers = TAMPERINGS[tampering](body, provider.sign(body, event_id), provider, event_id)
    before = len(broker_messages(db))

    response = provider.deliver(web, body, headers)

    assert problem(response, 400)["type"] == "/problems/bad-signature"
    assert len(broker_messages(db)) == before
    assert db.get(provider.event_key(event_id)) is None


def stripe_signed(header: str) -> dict[str, str]:
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def test_stripe_accepts_any_matching_v1_among_several(web: WebServer, db: redis.Redis) -> None:
    booking = held_booking(db)
    body = STRIPE.succeeded(booking.id, "evt_multi_" + str(time.time_ns()))
    good = stripe_headers(body)["Stripe-Signature"]
    t, v1 = good.split(",")
    header = f"{t},v1={'0' * 64},{v1},v0={'f' * 64}"

    response = STRIPE.deliver(web, body, stripe_signed(header))

    assert outcome(response) == "enqueued"


def test_stripe_refuses_a_header_with_only_v0_signatures(web: WebServer, db: redis.Redis) -> None:
    body = STRIPE.succeeded(held_booking(db).id, "evt_v0_" + str(time.time_ns()))
    header = stripe_headers(body)["Stripe-Signature"].replace("v1=", "v0=")

    problem(STRIPE.deliver(web, body, stripe_signed(header)), 400)


def test_standard_webhooks_accepts_any_matching_signature_among_several(
    web: WebServer, db: redis.Redis
) -> None:
    booking = held_booking(db)
    event_id = "msg_multi_" + str(time.time_ns())
    body = PAYMENTS.succeeded(booking.id, event_id)
    headers = payments_headers(body, event_id)
    headers["webhook-signature"] = (
        "v1a,c29tZXRoaW5n v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "
        + headers["webhook-signature"]
    )

    assert outcome(PAYMENTS.deliver(web, body, headers)) == "enqueued"


def test_standard_webhooks_signature_covers_the_message_id(web: WebServer, db: redis.Redis) -> None:
    event_id = "msg_id_" + str(time.time_ns())
    body = PAYMENTS.succeeded(held_booking(db).id, event_id)
    headers = payments_headers(body, event_id)
    headers["webhook-id"] = event_id + "x"
    before = len(broker_messages(db))

    problem(PAYMENTS.deliver(web, body, headers), 400)
    assert len(broker_messages(db)) == before


@PROVIDERS
def test_a_failed_payment_attempt_is_a_timeline_note_and_nothing_else(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    """A declined card: the customer may still pay the same payment (issue 9)."""
    booking = held_booking(db)
    event_id = new_event_id(provider)

    response = provider.send(web, provider.failed(booking.id, event_id), event_id)

    assert outcome(response) == "noted"
    assert state_of(db, booking.id) == State.AWAITING_PAYMENT
    assert "payment attempt failed" in last_reason(db, booking.id)
    assert tasks_for(db, booking.id, TaskName.NOTIFY) == []


@PROVIDERS
def test_a_cancelled_payment_cancels_the_held_booking(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    booking = held_booking(db)
    event_id = new_event_id(provider)

    response = provider.send(web, provider.canceled(booking.id, event_id), event_id)

    assert outcome(response) == "cancelled"
    assert state_of(db, booking.id) == State.CANCELLED
    assert tasks_for(db, booking.id, TaskName.PAYMENT_SUCCEEDED) == []
    assert [m.args for m in tasks_for(db, booking.id, TaskName.NOTIFY)] == [
        [booking.id, "booking.cancelled"]
    ]


@PROVIDERS
def test_a_cancel_after_a_received_success_is_only_a_note(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    """The success is queued, not applied yet: the late cancel must not close the booking."""
    booking = held_booking(db)
    paid_id = new_event_id(provider)
    paid = provider.send(web, provider.succeeded(booking.id, paid_id), paid_id)
    assert outcome(paid) == "enqueued"
    event_id = new_event_id(provider)

    response = provider.send(web, provider.canceled(booking.id, event_id), event_id)

    assert outcome(response) == "ignored"
    assert state_of(db, booking.id) == State.AWAITING_PAYMENT
    assert "ignored: a payment succeeded" in last_reason(db, booking.id)


@PROVIDERS
def test_events_we_do_not_act_on_are_acknowledged_without_enqueuing(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    before = len(broker_messages(db))
    cases: list[tuple[bytes, str, str]] = []
    for make, expected_detail in (
        (lambda e: provider.unknown_type(e), "unknown_type"),
        (lambda e: provider.succeeded(None, e), "no_booking_id"),
        (lambda e: provider.succeeded("bk_}x{y\x00\n", e), "invalid_booking_id"),
    ):
        event_id = new_event_id(provider)
        cases.append((make(event_id), event_id, expected_detail))

    for body, event_id, expected_detail in cases:
        response = provider.send(web, body, event_id)
        assert outcome(response) == "ignored"
        assert response.json()["detail"] == expected_detail
    assert len(broker_messages(db)) == before


@PROVIDERS
def test_a_payment_for_an_unknown_booking_is_acknowledged_and_not_enqueued(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    event_id = new_event_id(provider)
    body = provider.succeeded(new_booking_id(), event_id)  # well formed, never written
    before = len(broker_messages(db))

    response = provider.send(web, body, event_id)

    assert outcome(response) == "unknown_booking"
    assert len(broker_messages(db)) == before


@PROVIDERS
def test_a_delivery_while_the_first_is_in_flight_asks_for_a_retry(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    booking = held_booking(db)
    event_id = new_event_id(provider)
    # A first delivery between its claim and its enqueue, right now.
    left_by_a_first_delivery(db, provider, event_id, booking.id, recorded_at=time.time())

    response = provider.send(web, provider.succeeded(booking.id, event_id), event_id)

    assert problem(response, 503)
    assert int(response.headers["Retry-After"]) > 0
    assert tasks_for(db, booking.id, TaskName.PAYMENT_SUCCEEDED) == []


@PROVIDERS
def test_a_delivery_whose_first_attempt_died_is_enqueued_once_on_retry(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    booking = held_booking(db)
    event_id = new_event_id(provider)
    # A first delivery that claimed the id and died before its enqueue, a while ago.
    left_by_a_first_delivery(db, provider, event_id, booking.id, recorded_at=0)
    body = provider.succeeded(booking.id, event_id)

    first = provider.send(web, body, event_id)
    again = provider.send(web, body, event_id)

    assert outcome(first) == "enqueued"
    assert outcome(again) == "duplicate"
    assert len(tasks_for(db, booking.id, TaskName.PAYMENT_SUCCEEDED)) == 1


@PROVIDERS
def test_signed_but_malformed_bodies_are_refused(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    before = len(broker_messages(db))
    for body in (b'{"type": "payment.succeeded", "data": ', b"[1, 2]", b"NaN", b'"\\ud800"'):
        response = provider.send(web, body, new_event_id(provider))
        assert problem(response, 400)["type"] in (
            "/problems/malformed-json",
            "/problems/malformed-event",
        ), body
    assert len(broker_messages(db)) == before


def test_a_succeeded_event_without_an_amount_is_malformed(web: WebServer, db: redis.Redis) -> None:
    event_id = "msg_noamount_" + str(time.time_ns())
    body = payments_body("payment.succeeded", booking_id=held_booking(db).id, payment_id="p1")

    response = PAYMENTS.deliver(web, body, payments_headers(body, event_id))

    assert problem(response, 400)["type"] == "/problems/malformed-event"


@PROVIDERS
def test_an_oversized_body_is_refused_before_it_is_read(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    body = b'{"pad": "' + b"x" * (256 * 1024) + b'"}'
    before = len(broker_messages(db))

    declared = provider.send(web, body, new_event_id(provider))
    chunked = requests.post(
        provider.url(web),
        data=iter([body[i : i + 65536] for i in range(0, len(body), 65536)]),
        headers=provider.sign(body, new_event_id(provider)),
        timeout=10,
    )

    assert problem(declared, 413)
    assert problem(chunked, 413)
    assert len(broker_messages(db)) == before


@PROVIDERS
def test_a_body_that_is_not_json_is_refused_with_400(
    web: WebServer, db: redis.Redis, provider: Provider
) -> None:
    event_id = new_event_id(provider)
    body = provider.succeeded(held_booking(db).id, event_id)
    headers = {**provider.sign(body, event_id), "Content-Type": "application/x-www-form-urlencoded"}

    assert problem(provider.deliver(web, body, headers), 400)


def checkout_session(
    booking_id: str, session_id: str, payment_intent: str, payment_status: str
) -> dict[str, Any]:
    """A Checkout Session of 42.50 EUR (the held booking's total) for `booking_id`."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "payment_intent": payment_intent,
        "payment_status": payment_status,
        "amount_total": 4250,
        "currency": "eur",
        "metadata": {"booking_id": booking_id},
    }


def test_checkout_session_completed_pays_with_its_payment_intent(
    web: WebServer, db: redis.Redis
) -> None:
    booking = held_booking(db)
    event_id = "evt_cs_" + str(time.time_ns())
    session = checkout_session(booking.id, "cs_test_1", "pi_from_session", payment_status="paid")
    body = stripe_body("checkout.session.completed", session, event_id)

    response = STRIPE.deliver(web, body, stripe_headers(body))

    assert outcome(response) == "enqueued"
    recorded = json.loads(db.get(STRIPE.event_key(event_id)) or "{}")
    assert recorded["payment"]["payment_id"] == "pi_from_session"
    assert recorded["payment"]["amount_minor"] == 4250


def test_an_unpaid_checkout_session_waits_for_its_async_payment(
    web: WebServer, db: redis.Redis
) -> None:
    booking = held_booking(db)
    session = checkout_session(booking.id, "cs_test_async", "pi_async", payment_status="unpaid")
    completed = stripe_body("checkout.session.completed", session)
    paid_later = stripe_body(
        "checkout.session.async_payment_succeeded", {**session, "payment_status": "paid"}
    )

    first = STRIPE.deliver(web, completed, stripe_headers(completed))
    assert first.json() == {"outcome": "ignored", "eventId": json.loads(completed)["id"],
                            "detail": "not_paid"}
    assert tasks_for(db, booking.id, TaskName.PAYMENT_SUCCEEDED) == []

    second = STRIPE.deliver(web, paid_later, stripe_headers(paid_later))
    assert second.json()["outcome"] == "enqueued"
    assert len(tasks_for(db, booking.id, TaskName.PAYMENT_SUCCEEDED)) == 1
