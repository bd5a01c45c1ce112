"""The merchant API through gunicorn (no Celery worker: reservations stay enqueued)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis
import requests

from tests.http.helpers import (
    MERCHANT_KEY,
    MERCHANT_OLD_KEY,
    OTHER_SHOP_KEY,
    WebServer,
    broker_messages,
    held_booking,
    merchant_session,
    problem,
    scrape,
    store_for,
    tasks_for,
)
from tests.support.booking import CUSTOMER
from worker.booking import keys
from worker.booking.record import Booking, HeldReservation
from worker.booking.states import State
from worker.booking.store import Change
from worker.booking.task_names import TaskName


def booking_body(reference: str = "SHOP-1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "externalReference": reference,
        "items": [
            {
                "offer": "/v1/offers/42",
                "quantity": 1,
                "ticketSessions": [{"ticket": "/v1/tickets/7", "session": "/v1/sessions/3"}],
            }
        ],
        "customer": dict(CUSTOMER),
        "callbackUrl": "https://shop.example/hooks",
    }
    body.update(extra)
    return body


@pytest.fixture(scope="module")
def api() -> Iterator[requests.Session]:
    session = merchant_session()
    yield session
    session.close()


def bookings_url(web: WebServer, suffix: str = "") -> str:
    return f"{web.url}/v1/bookings{suffix}"


def received_count(db: redis.Redis) -> int:
    return int(db.zcard(keys.by_state(State.RECEIVED.value)))  # type: ignore[arg-type]


def test_a_new_booking_is_accepted_enqueued_and_readable(
    web: WebServer, db: redis.Redis, api: requests.Session
) -> None:
    response = api.post(bookings_url(web), json=booking_body(), timeout=10)

    assert response.status_code == 202, response.text
    created = response.json()
    assert created["state"] == "received" and created["externalReference"] == "SHOP-1"
    assert response.headers["Location"].endswith(f"/v1/bookings/{created['id']}")
    assert [m.task for m in tasks_for(db, created["id"])] == [TaskName.RESERVE]

    read = api.get(bookings_url(web, f"/{created['id']}"), timeout=10)
    assert read.status_code == 200
    view = read.json()
    assert view["id"] == created["id"]
    assert [e["to"] for e in view["timeline"]] == ["received"]
    assert set(view) >= {
        "reservations", "totalAmountInclTax", "currency", "expiresAt", "payment", "orders",
        "documents", "timeline", "createdAt", "updatedAt", "reason",
    }


def test_no_customer_data_is_ever_shown(
    web: WebServer, api: requests.Session, db: redis.Redis
) -> None:
    created = api.post(bookings_url(web), json=booking_body(), timeout=10).json()
    listed = api.get(bookings_url(web), params={"state": "received", "limit": 200}, timeout=10)

    for text in (str(created), api.get(bookings_url(web, f"/{created['id']}"), timeout=10).text,
                 listed.text):
        for secret in ("Grace", "Hopper", "grace@example.com", "+33123456789", "customer"):
            assert secret not in text


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", f"Basic {MERCHANT_KEY}", f"Bearer {MERCHANT_KEY}x", "Bearer "],
)
def test_a_request_without_a_valid_key_is_unauthorized(
    web: WebServer, db: redis.Redis, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    before = received_count(db)

    created = requests.post(bookings_url(web), json=booking_body(), headers=headers, timeout=10)
    listed = requests.get(bookings_url(web), params={"state": "received"}, headers=headers,
                          timeout=10)

    assert problem(created, 401)["type"] == "/problems/unauthorized"
    assert created.headers["WWW-Authenticate"].startswith("Bearer")
    problem(listed, 401)
    assert received_count(db) == before


def test_every_configured_key_is_accepted_and_reads_the_same_bookings(web: WebServer) -> None:
    with merchant_session(MERCHANT_OLD_KEY) as old, merchant_session(MERCHANT_KEY) as new:
        created = old.post(bookings_url(web), json=booking_body(), timeout=10)
        read = new.get(bookings_url(web, f"/{created.json()['id']}"), timeout=10)

    assert created.status_code == 202 and read.status_code == 200


def test_probes_spec_and_webhooks_need_no_key_and_metrics_are_not_public(
    web: WebServer,
) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert requests.get(web.url + path, timeout=10).status_code == 200, path
    # /metrics: 404 on the public port unless the scrape token is presented.
    assert requests.get(web.url + "/metrics", timeout=10).status_code == 404
    wrong = {"Authorization": f"Bearer {MERCHANT_KEY}"}
    assert requests.get(web.url + "/metrics", headers=wrong, timeout=10).status_code == 404
    assert scrape(web.url).status_code == 200
    # Refused for its signature, not for a missing merchant key.
    assert problem(requests.post(web.url + "/webhooks/stripe", json={}, timeout=10), 400)


def test_the_same_idempotency_key_and_body_return_the_same_booking(
    web: WebServer, db: redis.Redis, api: requests.Session
) -> None:
    key = f"order-{time.time_ns()}"
    body = booking_body("IDEM-1")

    first = api.post(bookings_url(web), json=body, headers={"Idempotency-Key": key}, timeout=10)
    again = api.post(bookings_url(web), json=body, headers={"Idempotency-Key": key}, timeout=10)
    other = api.post(
        bookings_url(web), json=booking_body("IDEM-2"), headers={"Idempotency-Key": key}, timeout=10
    )

    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert len(tasks_for(db, first.json()["id"], TaskName.RESERVE)) == 1
    assert problem(other, 422)["type"] == "/problems/idempotency-conflict"


def test_idempotency_survives_a_key_rotation_and_is_scoped_to_the_merchant(
    web: WebServer,
) -> None:
    key = f"order-{time.time_ns()}"
    headers = {"Idempotency-Key": key}
    with merchant_session(MERCHANT_OLD_KEY) as old, merchant_session(MERCHANT_KEY) as new, \
            merchant_session(OTHER_SHOP_KEY) as other:
        a = old.post(bookings_url(web), json=booking_body(), headers=headers, timeout=10)
        b = new.post(bookings_url(web), json=booking_body(), headers=headers, timeout=10)
        c = other.post(bookings_url(web), json=booking_body(), headers=headers, timeout=10)

    # Both keys of the default merchant: the retry after the rotation is the same booking.
    assert (a.status_code, b.status_code) == (202, 200)
    assert a.json()["id"] == b.json()["id"]
    # Another merchant's key space is its own.
    assert c.status_code == 202 and c.json()["id"] != a.json()["id"]


def test_a_merchant_reads_lists_and_cancels_only_its_own_bookings(web: WebServer) -> None:
    with merchant_session(MERCHANT_KEY) as mine, merchant_session(OTHER_SHOP_KEY) as other:
        created = mine.post(bookings_url(web), json=booking_body("MINE-1"), timeout=10).json()
        theirs = other.post(bookings_url(web), json=booking_body("THEIRS-1"), timeout=10).json()
        path = f"/{created['id']}"

        assert problem(other.get(bookings_url(web, path), timeout=10), 404)
        assert problem(other.post(bookings_url(web, path + "/cancel"), timeout=10), 404)
        assert problem(other.post(bookings_url(web, path + "/documents/refresh"), timeout=10),
                       404)
        listed: set[str] = set()
        cursor: str | None = None
        for _ in range(50):  # bounded walk of every page
            params = {"state": "received", "limit": "200", **({"cursor": cursor} if cursor
                                                               else {})}
            page = other.get(bookings_url(web), params=params, timeout=10).json()
            listed |= {b["id"] for b in page["items"]}
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert created["id"] not in listed and theirs["id"] in listed
        assert mine.get(bookings_url(web, path), timeout=10).json()["state"] == "received"


def test_concurrent_requests_with_one_idempotency_key_create_one_booking(
    web: WebServer, db: redis.Redis
) -> None:
    key = f"race-{time.time_ns()}"
    answers: list[requests.Response] = []

    def post() -> None:
        with merchant_session() as session:
            answers.append(session.post(bookings_url(web), json=booking_body("RACE"),
                                        headers={"Idempotency-Key": key}, timeout=10))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)

    ids = {a.json()["id"] for a in answers if a.status_code in (200, 202)}
    assert len(ids) == 1, [a.text for a in answers]
    assert all(a.status_code in (200, 202, 409) for a in answers)
    assert len(tasks_for(db, ids.pop(), TaskName.RESERVE)) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("externalReference"), "externalReference"),
        (lambda b: b.update(externalReference="x" * 51), "externalReference"),
        (lambda b: b["items"][0]["ticketSessions"][0].update(ticket="not-an-iri"),
         "items[0].ticketSessions[0].ticket"),
        (lambda b: b["items"][0].update(quantity=0), "items[0].quantity"),
        (lambda b: b["customer"].update(email="nobody"), "customer.email"),
        (lambda b: b["customer"].update(nickname="Amazing"), "customer.nickname"),
        (lambda b: b.update(items=[]), "items"),
        (lambda b: b.update(reservationPolicy="sometimes"), "reservationPolicy"),
        # Callback targets: https only (CALLBACK_ALLOW_HTTP is off), no credentials, no
        # control characters, no literal non-public address.
        (lambda b: b.update(callbackUrl="http://shop.example/hooks"), "callbackUrl"),
        (lambda b: b.update(callbackUrl="https://user:pw@shop.example/hooks"), "callbackUrl"),
        (lambda b: b.update(callbackUrl="https://shop.example/h\r\nX-A: 1"), "callbackUrl"),
        (lambda b: b.update(callbackUrl="https://169.254.169.254/latest/"), "callbackUrl"),
        (lambda b: b.update(callbackUrl="https://[::ffff:127.0.0.1]/hooks"), "callbackUrl"),
    ],
)
def test_validation_errors_name_the_field_and_write_nothing(
    web: WebServer, db: redis.Redis, api: requests.Session, change: Any, field: str
) -> None:
    body = booking_body()
    change(body)
    before = (received_count(db), len(broker_messages(db)))

    response = api.post(bookings_url(web), json=body, timeout=10)

    document = problem(response, 422)
    assert document["type"] == "/problems/validation-error"
    assert field in [e["field"] for e in document["errors"]], document
    assert "Amazing" not in response.text and "nobody" not in response.text
    assert (received_count(db), len(broker_messages(db))) == before


def test_bodies_that_are_not_json_objects_are_refused(
    web: WebServer, db: redis.Redis, api: requests.Session
) -> None:
    before = received_count(db)
    url = bookings_url(web)
    json_headers = {"Content-Type": "application/json"}

    assert problem(api.post(url, data=b"{", headers=json_headers, timeout=10), 400)
    assert problem(api.post(url, data=b"[]", headers=json_headers, timeout=10), 422)
    assert problem(api.post(url, data=b"x=1", timeout=10), 415)
    assert problem(api.post(url, data=b" " * (300 * 1024), headers=json_headers, timeout=10), 413)
    assert received_count(db) == before


def test_a_malformed_idempotency_key_is_a_validation_error(
    web: WebServer, api: requests.Session
) -> None:
    response = api.post(
        bookings_url(web), json=booking_body(), headers={"Idempotency-Key": "x" * 300}, timeout=10
    )

    assert problem(response, 422)["errors"][0]["field"] == "Idempotency-Key"


def test_listing_pages_through_every_booking_of_a_state_once(
    web: WebServer, db: redis.Redis, api: requests.Session
) -> None:
    mine = [held_booking(db, state=State.DOCUMENTS_PENDING).id for _ in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"state": "documents_pending", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get(bookings_url(web), params=params, timeout=10)
        assert page.status_code == 200, page.text
        seen += [b["id"] for b in page.json()["items"]]
        assert all(b["state"] == "documents_pending" for b in page.json()["items"])
        assert all("timeline" not in b for b in page.json()["items"])
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break

    assert [i for i in seen if i in mine] == mine  # oldest first, each once
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "state"),
        ({"state": "sleeping"}, "state"),
        ({"state": "received", "limit": "0"}, "limit"),
        ({"state": "received", "limit": "many"}, "limit"),
        ({"state": "received", "cursor": "!!"}, "cursor"),
        ({"state": "completed", "cursor": "WyJyZWNlaXZlZCIsMS4wXQ"}, "cursor"),  # other state
    ],
)
def test_invalid_listing_parameters_are_named(
    web: WebServer, api: requests.Session, params: dict[str, str], field: str
) -> None:
    document = problem(api.get(bookings_url(web), params=params, timeout=10), 422)
    assert field in [e["field"] for e in document["errors"]]


def test_cancel_stops_an_unpaid_booking_and_is_idempotent(
    web: WebServer, db: redis.Redis, api: requests.Session
) -> None:
    booking = held_booking(db)

    first = api.post(bookings_url(web, f"/{booking.id}/cancel"), timeout=10)
    again = api.post(bookings_url(web, f"/{booking.id}/cancel"), timeout=10)

    assert first.status_code == again.status_code == 200
    assert first.json()["state"] == "cancelled"
    assert [e["to"] for e in again.json()["timeline"]] == ["awaiting_payment", "cancelled"]
    assert [m.args for m in tasks_for(db, booking.id, TaskName.NOTIFY)] == [
        [booking.id, "booking.cancelled"]
    ]


def test_cancel_refuses_a_paid_booking_and_an_unknown_one(
    web: WebServer, db: redis.Redis, api: requests.Session
) -> None:
    paid = held_booking(db, state=State.PAID)

    refused = api.post(bookings_url(web, f"/{paid.id}/cancel"), timeout=10)
    unknown = api.post(bookings_url(web, "/bk_000000000000000000000000/cancel"), timeout=10)
    odd_id = api.get(bookings_url(web, "/bk%7Bx%7D"), timeout=10)

    assert problem(refused, 409)["type"] == "/problems/invalid-state"
    assert store_for(db).load(paid.id).state == State.PAID  # type: ignore[union-attr]
    assert problem(unknown, 404)["type"] == "/problems/not-found"
    problem(odd_id, 404)


def test_documents_refresh_is_enqueued_only_for_completed_bookings(
    web: WebServer, db: redis.Redis, api: requests.Session
) -> None:
    completed = held_booking(db, state=State.COMPLETED)
    pending = held_booking(db, state=State.DOCUMENTS_PENDING)

    accepted = api.post(bookings_url(web, f"/{completed.id}/documents/refresh"), timeout=10)
    refused = api.post(bookings_url(web, f"/{pending.id}/documents/refresh"), timeout=10)

    assert accepted.status_code == 202 and accepted.json()["id"] == completed.id
    assert [(m.task, m.kwargs) for m in tasks_for(db, completed.id)] == [
        (TaskName.FETCH_DOCUMENTS, {"refresh": True})
    ]
    assert problem(refused, 409)
    assert tasks_for(db, pending.id) == []


def _pretend_to_reserve(db: redis.Redis, stop: threading.Event) -> None:
    """Stand-in for the worker: moves every received booking to awaiting_payment."""
    store = store_for(db)

    def reserve(booking: Booking) -> Change | None:
        if booking.state != State.RECEIVED:
            return None
        booking.state = State.RESERVING
        return Change(booking, "test reserving")

    def hold(booking: Booking) -> Change | None:
        if booking.state != State.RESERVING:
            return None
        expires = datetime.now(UTC) + timedelta(minutes=15)
        booking.reservations = [HeldReservation(id="r9", iri="/v1/booking/reservations/r9",
                                                expires_at=expires,
                                                total_incl_tax=Decimal("19.90"))]
        booking.total_incl_tax = Decimal("19.90")
        booking.state = State.AWAITING_PAYMENT
        return Change(booking, "test held")

    while not stop.is_set():
        for booking_id in db.zrange(keys.by_state(State.RECEIVED.value), 0, -1):  # type: ignore[union-attr]
            store.update(booking_id, reserve)
            store.update(booking_id, hold)
        time.sleep(0.05)


def test_prefer_wait_answers_201_once_the_reservation_is_held(
    web: WebServer, db: redis.Redis, api: requests.Session
) -> None:
    stop = threading.Event()
    reserver = threading.Thread(target=_pretend_to_reserve, args=(db, stop), daemon=True)
    reserver.start()
    try:
        response = api.post(bookings_url(web), json=booking_body(),
                            headers={"Prefer": "wait=5"}, timeout=15)
    finally:
        stop.set()
        reserver.join(5)

    assert response.status_code == 201, response.text
    held = response.json()
    assert held["state"] == "awaiting_payment"
    assert held["totalAmountInclTax"] == "19.90"
    assert held["expiresAt"] == held["reservations"][0]["expiresAt"]
    assert response.headers["Preference-Applied"] == "wait=5"


def test_prefer_wait_gives_up_with_202_when_nothing_reserves(
    web: WebServer, api: requests.Session
) -> None:
    started = time.monotonic()
    response = api.post(bookings_url(web), json=booking_body(), headers={"Prefer": "wait=1"},
                        timeout=15)

    assert response.status_code == 202 and response.json()["state"] == "received"
    assert 0.9 <= time.monotonic() - started < 5


def _bundle(quantity: int, tickets: list[str]) -> dict[str, Any]:
    return {
        "offer": "/v1/offers/42",
        "quantity": quantity,
        "ticketSessions": [{"ticket": t} for t in tickets],
    }


@pytest.mark.parametrize(
    ("item", "accepted"),
    [
        (_bundle(1, ["/v1/t/a", "/v1/t/b"]), True),  # the documented shape: one unit, 2 tickets
        (_bundle(2, ["/v1/t/a", "/v1/t/b", "/v1/t/a", "/v1/t/b"]), True),
        (_bundle(2, ["/v1/t/a", "/v1/t/a"]), True),  # two units of a one-ticket offer
        (_bundle(2, ["/v1/t/a", "/v1/t/b", "/v1/t/c"]), False),  # not a multiple of quantity
        (_bundle(2, ["/v1/t/a", "/v1/t/b", "/v1/t/b", "/v1/t/a"]), False),  # units differ
        (_bundle(3, ["/v1/t/a", "/v1/t/a"]), False),  # fewer entries than units
    ],
)
def test_bundle_offers_take_one_entry_per_ticket_for_each_unit(
    web: WebServer, api: requests.Session, item: dict[str, Any], accepted: bool
) -> None:
    body = booking_body(f"BUNDLE-{time.time_ns()}"[:50], items=[item])

    response = api.post(bookings_url(web), json=body, timeout=10)

    if accepted:
        assert response.status_code == 202, response.text
    else:
        document = problem(response, 422)
        assert "items[0]" in [e["field"] for e in document["errors"]], document
