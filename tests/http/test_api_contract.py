"""The front's contract: the spec lists what is served, errors are problems, probes and
metrics tell the truth, and a backend outage answers 503 rather than losing anything."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from falcon import testing

from tests.http.helpers import (
    MERCHANT_KEY,
    WebServer,
    held_booking,
    merchant_session,
    payment_intent,
    problem,
    scrape,
    stripe_body,
    stripe_headers,
    web_env,
)
from worker.booking.service import BookingService, new_booking_id
from worker.booking.states import State
from worker.http.app import ROUTES, create_app
from worker.processes import free_port
from worker.settings import Settings


@pytest.fixture(scope="module")
def spec(web: WebServer) -> dict[str, Any]:
    response = requests.get(web.url + "/openapi.json", timeout=10)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_the_spec_lists_every_route_with_its_problems_and_security(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == set(ROUTES)
    schemas = spec["components"]["schemas"]
    assert {"BookingRequest", "BookingView", "BookingPage", "Problem"} <= set(schemas)
    assert spec["components"]["securitySchemes"]["merchantKey"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            merchant = path.startswith("/v1/")
            assert (operation["security"] != []) == merchant, (method, path)
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    content = response["content"]["application/problem+json"]
                    assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
            if merchant:
                assert "401" in operation["responses"]
    post = spec["paths"]["/v1/bookings"]["post"]
    body_schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/BookingRequest"}
    assert "externalReference" in schemas["BookingRequest"]["properties"]
    assert "customer" not in schemas["BookingView"]["properties"]


def test_unknown_routes_and_wrong_methods_are_problems(web: WebServer) -> None:
    assert problem(requests.get(web.url + "/nowhere", timeout=10), 404)
    not_allowed = requests.delete(web.url + "/healthz", timeout=10)
    assert problem(not_allowed, 405)
    assert "GET" in not_allowed.headers["Allow"]
    with merchant_session() as api:
        assert problem(api.put(web.url + "/v1/bookings", json={}, timeout=10), 405)


def test_health_and_readiness(web: WebServer) -> None:
    assert requests.get(web.url + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(web.url + "/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"redis": "ok", "broker": "ok"}


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_by_route_webhooks_by_outcome_and_bookings_by_state(
    web: WebServer, db: redis.Redis
) -> None:
    before = scrape(web.url).text
    booking = held_booking(db, state=State.ORDER_UNCERTAIN)
    with merchant_session() as api:
        for _ in range(3):  # spread over both gunicorn workers
            api.get(f"{web.url}/v1/bookings/{booking.id}", timeout=10)
    body = stripe_body("payment_intent.succeeded", payment_intent(booking.id),
                       f"evt_metrics_{time.time_ns()}")
    requests.post(web.url + "/webhooks/stripe", data=body, headers=stripe_headers(body),
                  timeout=10)
    requests.post(web.url + "/webhooks/stripe", data=body,
                  headers={"Content-Type": "application/json"}, timeout=10)

    after = scrape(web.url).text

    route = "/v1/bookings/{booking_id}"
    requests_name = "booking_worker_http_requests_total"
    assert _sample(after, requests_name, route=route, status="200") - _sample(
        before, requests_name, route=route, status="200"
    ) == 3
    assert booking.id not in after  # templates, not raw paths
    webhooks = "booking_worker_webhook_events_total"
    for outcome in ("enqueued", "bad_signature"):
        assert _sample(after, webhooks, provider="stripe", outcome=outcome) - _sample(
            before, webhooks, provider="stripe", outcome=outcome
        ) == 1
    assert _sample(after, "booking_worker_bookings", state="order_uncertain") == db.zcard(
        "bw:state:order_uncertain"
    ) >= 1
    assert re.search(r"booking_worker_http_request_duration_seconds_bucket\{", after)


def test_metrics_report_the_sweepers_actions(web: WebServer, db: redis.Redis) -> None:
    db.hset("bw:stats:sweep", mapping={"cancelled": 3, "runs": 7, "last_ms": "1.5"})

    text = scrape(web.url).text

    assert _sample(text, "booking_worker_sweep_actions_total", action="cancelled") == 3
    assert _sample(text, "booking_worker_sweep_actions_total", action="runs") == 7
    assert "last_ms" not in text


@pytest.fixture(scope="module")
def web_without_redis(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebServer]:
    """The front started while Redis (and so the broker) is unreachable."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = web_env(dead)
    server = WebServer(env, Path(tmp_path_factory.mktemp("web-down")) / "gunicorn.log").start()
    yield server
    server.stop()


def test_a_backend_outage_answers_503_so_callers_retry(web_without_redis: WebServer) -> None:
    url = web_without_redis.url
    body = stripe_body("payment_intent.succeeded", payment_intent(new_booking_id()),
                       "evt_down")

    ready = requests.get(url + "/readyz", timeout=10)
    webhook = requests.post(url + "/webhooks/stripe", data=body, headers=stripe_headers(body),
                            timeout=10)
    with merchant_session() as api:
        created = api.post(url + "/v1/bookings", json={
            "externalReference": "DOWN",
            "items": [{"offer": "/v1/offers/1", "quantity": 1,
                       "ticketSessions": [{"ticket": "/v1/tickets/1"}]}],
            "customer": {"firstname": "A", "lastname": "B", "email": "a@b.co"},
        }, timeout=10)

    assert set(problem(ready, 503)["checks"]) == {"redis", "broker"}
    for response in (webhook, created):
        assert problem(response, 503)["type"] == "/problems/service-unavailable"
        assert int(response.headers["Retry-After"]) > 0
    assert requests.get(url + "/healthz", timeout=10).status_code == 200
    assert scrape(url).status_code == 200


@pytest.fixture(scope="module")
def web_without_broker(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebServer]:
    """Redis answers but the broker (a separate BROKER_URL) does not."""
    env = web_env(redis_url, BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    server = WebServer(env, Path(tmp_path_factory.mktemp("web-nobroker")) / "gunicorn.log")
    yield server.start()
    server.stop()


def test_a_payment_is_not_acknowledged_until_it_is_on_the_broker(
    web_without_broker: WebServer, db: redis.Redis
) -> None:
    booking = held_booking(db)
    event_id = f"evt_nobroker_{time.time_ns()}"
    body = stripe_body("payment_intent.succeeded", payment_intent(booking.id), event_id)
    url = web_without_broker.url + "/webhooks/stripe"

    first = requests.post(url, data=body, headers=stripe_headers(body), timeout=20)
    retry = requests.post(url, data=body, headers=stripe_headers(body), timeout=20)

    assert problem(first, 503)["type"] == "/problems/service-unavailable"
    # The retry finds the first delivery unconfirmed and still recent: retry later too.
    assert problem(retry, 503)
    recorded = db.get(f"bw:event:stripe:{event_id}")
    assert recorded is not None and json.loads(recorded)["enqueued"] is False
    ready = requests.get(web_without_broker.url + "/readyz", timeout=10)
    assert problem(ready, 503)["checks"] == {"redis": "ok", "broker": "error: OperationalError"}


class _BrokenService(BookingService):
    def __init__(self, real: BookingService) -> None:
        self.__dict__.update(real.__dict__)

    def get(self, booking_id: str) -> Any:
        raise RuntimeError("secret internal detail /srv/app.py line 12")


def test_an_unexpected_error_is_a_bare_500_problem(redis_url: str) -> None:
    from worker import runtime

    settings = Settings(
        redis_url=redis_url, korus_base_url="http://127.0.0.1:9", korus_token="x",  # type: ignore[arg-type]
        merchant_api_keys=MERCHANT_KEY,  # type: ignore[arg-type]
    )
    client = testing.TestClient(create_app(_BrokenService(runtime.service()), settings))

    response = client.simulate_get(
        "/v1/bookings/bk_1", headers={"Authorization": f"Bearer {MERCHANT_KEY}"}
    )

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json["title"] == "Internal Server Error"
    assert "secret" not in response.text and "Traceback" not in response.text


def test_metrics_report_korus_calls_of_the_fleet(web: WebServer, db: redis.Redis) -> None:
    db.hset("bw:stats:korus", mapping={
        "POST /v1/booking/orders/_bulk|count|200": 4,
        "POST /v1/booking/orders/_bulk|count|KorusOutcomeUnknownError": 1,
        "POST /v1/booking/orders/_bulk|sum": 2.5,
        "POST /v1/booking/orders/_bulk|bucket|0.5": 4,
        "POST /v1/booking/orders/_bulk|bucket|+Inf": 1,
    })

    text = scrape(web.url).text

    calls = "booking_worker_korus_calls_total"
    endpoint = "POST /v1/booking/orders/_bulk"
    assert _sample(text, calls, endpoint=endpoint, outcome="200") == 4
    assert _sample(text, calls, endpoint=endpoint, outcome="KorusOutcomeUnknownError") == 1
    histogram = "booking_worker_korus_call_seconds_bucket"
    assert _sample(text, histogram, endpoint=endpoint, le="0.5") == 4
    assert _sample(text, histogram, endpoint=endpoint, le="+Inf") == 5
    assert _sample(text, "booking_worker_korus_call_seconds_count", endpoint=endpoint) == 5


def test_the_openapi_document_states_the_bundle_rule() -> None:
    from worker.http.openapi import build_document

    fields = build_document()["components"]["schemas"]["ReservationItem"]["properties"]
    assert "quantity x (tickets of the offer)" in fields["ticketSessions"]["description"]
    assert "not tickets" in fields["quantity"]["description"]
