"""Helpers of the HTTP front tests: the gunicorn process, signed webhooks, broker contents."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
import requests
import standardwebhooks
import stripe

from tests.factories import booking_in
from tests.support.broker import Message, broker_messages
from worker.booking.record import Booking
from worker.booking.service import new_booking_id
from worker.booking.states import State
from worker.booking.store import BookingStore
from worker.booking.task_names import TaskName
from worker.processes import Proc, free_port, service_env, wait_http

ROOT = Path(__file__).resolve().parents[2]

STRIPE_SECRET = "whsec_test_current_0123456789abcdef"
STRIPE_OLD_SECRET = "whsec_test_previous_fedcba9876543210"
PAYMENTS_SECRET = "whsec_" + base64.b64encode(b"payments-current-secret-32-bytes").decode()
PAYMENTS_OLD_SECRET = "whsec_" + base64.b64encode(b"payments-previous-secret-32bytes").decode()
MERCHANT_KEY = "mk_live_current_7f3a9c1e5b2d4f60"
MERCHANT_OLD_KEY = "mk_live_previous_1a2b3c4d5e6f7a8b"
# A second, named merchant (`name:key` entry of MERCHANT_API_KEYS).
OTHER_SHOP_KEY = "mk_live_other_shop_5c6d7e8f9a0b1c2d"
METRICS_TOKEN = "metrics-scrape-token-0123456789"
QUEUES = ("payments", "bookings", "documents", "callbacks", "maintenance")

def web_env(redis_url: str, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The web front's environment: the deployment's (or placeholders) plus secrets."""
    env = dict(base) if base is not None else service_env(redis_url, "http://127.0.0.1:9")
    env.update(
        {
            "REDIS_URL": redis_url,
            "STRIPE_WEBHOOK_SECRET": f"{STRIPE_SECRET},{STRIPE_OLD_SECRET}",
            "PAYMENTS_WEBHOOK_SECRET": f"{PAYMENTS_SECRET},{PAYMENTS_OLD_SECRET}",
            "MERCHANT_API_KEYS": f"{MERCHANT_KEY}, {MERCHANT_OLD_KEY}, other-shop:{OTHER_SHOP_KEY}",
            "WEB_CONCURRENCY": "2",
            "METRICS_TOKEN": METRICS_TOKEN,
        }
    )
    env.update(extra)
    return env


@dataclass
class WebServer:
    """gunicorn with deploy/gunicorn.conf.py on a free loopback port."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebServer:
        argv = [
            sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{self.port}", "--chdir", str(ROOT),
            "worker.http.wsgi:application",
        ]
        self.proc = Proc("web", argv, self.env, self.log_path).start()
        try:
            wait_http(f"{self.url}/healthz", timeout=20)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"gunicorn did not start:\n{self.log()}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""


def scrape(url: str) -> requests.Response:
    """GET /metrics on the public port with the scrape token."""
    return requests.get(url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                        timeout=10)


def merchant_session(key: str = MERCHANT_KEY) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return session


# -- bookings in the store ---------------------------------------------------------------


def store_for(client: redis.Redis) -> BookingStore:
    return BookingStore(client, retention_seconds=3600)


def held_booking(
    client: redis.Redis,
    *,
    state: State = State.AWAITING_PAYMENT,
    total: Decimal = Decimal("42.50"),
    **fields: Any,
) -> Booking:
    """A booking written straight into the store, as if a worker had reserved it."""
    booking = booking_in(
        state,
        id=new_booking_id(),
        external_reference="HTTP-TEST",
        expires_in=900,
        hold_total=total,
        **fields,
    )
    assert store_for(client).create(booking, reason="written by the test")
    return booking


# -- signed webhooks ----------------------------------------------------------------------


def stripe_body(
    event_type: str, obj: dict[str, Any], event_id: str | None = None
) -> bytes:
    event = {
        "id": event_id or f"evt_{time.time_ns()}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def payment_intent(booking_id: str | None, amount: int = 4250, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": extra.pop("id", f"pi_{time.time_ns()}"),
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": "eur",
        "metadata": {} if booking_id is None else {"booking_id": booking_id},
        "status": "succeeded",
    }
    obj.update(extra)
    return obj


def stripe_headers(
    body: bytes, secret: str = STRIPE_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """Signed by the official library (`stripe.WebhookSignature`, as in its test helpers)."""
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json; charset=utf-8"}


def payments_body(event_type: str, **data: Any) -> bytes:
    return json.dumps({"type": event_type, "data": data}).encode()


def payments_headers(
    body: bytes,
    msg_id: str | None = None,
    secret: str = PAYMENTS_SECRET,
    timestamp: int | None = None,
) -> dict[str, str]:
    """Signed by the official `standardwebhooks` library."""
    msg_id = msg_id or f"msg_{time.time_ns()}"
    moment = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, moment, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }


# -- the broker (messages read by tests/support/broker.py) --------------------------


def tasks_for(
    client: redis.Redis, booking_id: str, task: TaskName | None = None
) -> list[Message]:
    return [
        m
        for m in broker_messages(client)
        if m.args and m.args[0] == booking_id and (task is None or m.task == task)
    ]


def problem(response: requests.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem document with this status; return it."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    assert "Traceback" not in response.text
    return body
