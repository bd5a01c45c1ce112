"""Helpers of the operations tests: an HTTP recorder, a recording enqueuer, booking
factories, Sentry envelope parsing and bounded waits."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import redis

from worker.booking.context import StepContext
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.record import (
    Booking,
    Customer,
    HeldReservation,
    OrderAttempt,
    Payment,
    TicketDocument,
    utcnow,
)
from worker.booking.states import State
from worker.booking.store import BookingStore
from worker.settings import Settings

T = TypeVar("T")

CUSTOMER = {
    "firstname": "Grace",
    "lastname": "Hopper",
    "email": "grace.hopper@example.com",
    "phone": "+33123456789",
}


def wait_until(check: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.1) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- HTTP recorder (Sentry envelopes, merchant callbacks) --------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes  # decompressed

    def json(self) -> Any:
        return json.loads(self.body)


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.lower().strip()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding in ("", "identity"):
        return body
    raise AssertionError(f"unsupported Content-Encoding {encoding!r}")


@dataclass
class HttpRecorder:
    """A loopback HTTP server that answers 200 to every POST and keeps the requests."""

    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> HttpRecorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = decompress(raw, self.headers.get("Content-Encoding", ""))
                with recorder._lock:
                    recorder.requests.append(
                        Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sentry_dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.port}/1"

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # Sentry: POST /api/1/envelope/
    def envelope_items(self) -> list[tuple[dict[str, Any], bytes]]:
        items = []
        for request in self.snapshot():
            if "/envelope/" in request.path:
                items.extend(parse_envelope(request.body))
        return items

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(p) for h, p in self.envelope_items() if h.get("type") == "event"]

    def check_ins(self) -> list[dict[str, Any]]:
        return [json.loads(p) for h, p in self.envelope_items() if h.get("type") == "check_in"]

    def raw_envelopes(self) -> bytes:
        return b"\n".join(r.body for r in self.snapshot() if "/envelope/" in r.path)

    def callbacks(self, booking_id: str) -> list[dict[str, Any]]:
        out = []
        for request in self.snapshot():
            if "/envelope/" in request.path:
                continue
            body = request.json()
            if body.get("data", {}).get("id") == booking_id:
                out.append(body)
        return out


def parse_envelope(body: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Items of a Sentry envelope: header line, then (item header, payload) pairs."""
    items: list[tuple[dict[str, Any], bytes]] = []
    _, _, rest = body.partition(b"\n")
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        length = header.get("length")
        if length is not None:
            payload, rest = rest[:length], rest[length + 1:]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


@contextlib.contextmanager
def recorder() -> Iterator[HttpRecorder]:
    server = HttpRecorder().start()
    try:
        yield server
    finally:
        server.stop()


# -- domain: enqueuer, context, bookings ---------------------------------------------


@dataclass
class RecordingEnqueuer:
    """The Enqueuer protocol, keeping calls instead of sending messages."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _add(self, name: str, booking_id: str, **options: Any) -> None:
        with self._lock:
            self.calls.append((name, booking_id, options))

    def reserve(self, booking_id: str) -> None:
        self._add("reserve", booking_id)

    def payment_succeeded(self, booking_id: str, event_id: str) -> None:
        self._add("payment_succeeded", booking_id, event_id=event_id)

    def create_order(self, booking_id: str, *, urgent: bool = False, countdown: float = 0) -> None:
        self._add("create_order", booking_id, urgent=urgent)

    def fetch_documents(self, booking_id: str, *, countdown: float = 0,
                        refresh: bool = False) -> None:
        self._add("fetch_documents", booking_id)

    def notify(self, booking_id: str, event_type: str) -> None:
        self._add("notify", booking_id, event=event_type)

    def named(self, name: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [call for call in self.calls if call[0] == name]


def ops_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "korus_base_url": "http://127.0.0.1:9",
        "korus_token": "placeholder",
        "cancel_margin_seconds": 60,
        "stuck_after_seconds": 300,
    }
    values.update(overrides)
    return Settings(**values)


def make_context(client: redis.Redis, settings: Settings, enqueue: Any,
                 now: datetime | None = None) -> StepContext:
    policy = DeadlinePolicy(
        cancel_margin=timedelta(seconds=settings.cancel_margin_seconds),
        stuck_after=timedelta(seconds=settings.stuck_after_seconds),
        redrive_after=timedelta(seconds=settings.redrive_after_seconds),
        beneficiary_wait=timedelta(seconds=settings.beneficiary_wait_seconds),
    )
    store = BookingStore(client, retention_seconds=3600, deadline_policy=policy)

    def no_korus() -> Any:
        raise AssertionError("the sweep must not call Korus")

    clock = (lambda: now) if now is not None else utcnow
    return StepContext(settings=settings, redis=client, store=store, enqueue=enqueue,
                       korus_factory=no_korus, clock=clock)


_counter = iter(range(1, 10**9))


def make_booking(
    state: State,
    *,
    now: datetime,
    expires_in: float | None = 600,
    updated_ago: float = 0,
    **fields: Any,
) -> Booking:
    """A record as the steps would have left it in `state` (holds, payment, orders...)."""
    n = next(_counter)
    updated = now - timedelta(seconds=updated_ago)
    booking = Booking(
        id=f"bk_ops{n:08d}",
        external_reference=f"OPS-{n}",
        state=state,
        created_at=updated - timedelta(seconds=5),
        updated_at=updated,
        items=[{"offer": "/v1/ticketing/catalogs/c/offers/o", "quantity": 1}],
        customer=Customer.model_validate(CUSTOMER),
        **fields,
    )
    if expires_in is not None and state not in (State.RECEIVED, State.RESERVING):
        booking.reservations = [
            HeldReservation(
                id=f"res{n}",
                iri=f"/v1/booking/reservations/res{n}",
                expires_at=now + timedelta(seconds=expires_in),
                total_incl_tax=Decimal("40.00"),
            )
        ]
        booking.total_incl_tax = Decimal("40.00")
    if state in (State.PAID, State.ORDERING, State.ORDER_UNCERTAIN):
        booking.payment = Payment(provider="test", event_id=f"evt{n}", payment_id=f"pi{n}",
                                  amount_minor=4000, currency="eur", received_at=updated)
    if state == State.ORDERING:
        booking.order_attempts = 1
        booking.order_attempt = OrderAttempt(number=1, task_id="t", started_at=updated,
                                             lease_until=updated + timedelta(seconds=30))
    return booking


def pending_documents(now: datetime, downloadable_in: float) -> list[TicketDocument]:
    return [TicketDocument(order_id="o1", document_id="d1",
                           downloadable_at=now + timedelta(seconds=downloadable_in))]
