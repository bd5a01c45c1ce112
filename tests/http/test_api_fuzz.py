"""Schema-driven fuzzing of the live server against its own /openapi.json.

Inputs are drawn from the spec's JSON Schemas (valid ones) and from arbitrary JSON,
headers and paths (invalid ones). Every answer must be a status the spec lists for that
operation, with the documented content type and a body of the documented schema; never
a 5xx. Example counts are bounded so the module stays within a few seconds.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
import redis
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.http.helpers import WebServer, broker_messages, merchant_session
from tests.http.schema_strategies import SchemaStrategies, json_values
from worker.booking.views import BookingPage, BookingView
from worker.http.health import HealthStatus
from worker.http.problems import Problem
from worker.http.webhooks import WebhookAck

MODELS: dict[str, type[BaseModel]] = {
    "BookingView": BookingView,
    "BookingPage": BookingPage,
    "Problem": Problem,
    "WebhookAck": WebhookAck,
    "HealthStatus": HealthStatus,
}
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def spec(web: WebServer) -> dict[str, Any]:
    document: dict[str, Any] = requests.get(web.url + "/openapi.json", timeout=10).json()
    return document


@pytest.fixture(scope="module")
def api() -> Any:
    with merchant_session() as session:
        yield session


def conforms(spec: dict[str, Any], path: str, method: str, response: requests.Response) -> int:
    """Assert the response is one the spec documents for this operation; return status."""
    status = response.status_code
    assert status < 500, (path, method, status, response.text)
    documented = spec["paths"][path][method]["responses"]
    assert str(status) in documented, (path, method, status, response.text)
    media, description = next(iter(documented[str(status)]["content"].items()))
    assert response.headers["Content-Type"].split(";")[0] == media, response.headers
    name = description["schema"]["$ref"].rsplit("/", 1)[-1]
    body = response.json()
    MODELS[name].model_validate(body)
    properties = spec["components"]["schemas"][name]["properties"]
    assert set(body) <= set(properties), (name, set(body) - set(properties))
    return status


def one_session_per_ticket(body: dict[str, Any]) -> dict[str, Any]:
    """The one rule JSON Schema cannot state: ticketSessions holds quantity x (tickets of
    the offer) entries, each unit listing the same tickets. One unit of an offer bundling
    all the drawn tickets always satisfies it."""
    for item in body.get("items", []):
        item["quantity"] = 1
    return body


def test_booking_bodies_drawn_from_the_schema_get_documented_answers(
    web: WebServer, spec: dict[str, Any], api: requests.Session
) -> None:
    statuses: Counter[int] = Counter()
    bodies = SchemaStrategies(spec["components"]["schemas"]).ref("BookingRequest")
    bodies = bodies.map(one_session_per_ticket)

    @FUZZ
    @given(body=bodies)
    def post(body: dict[str, Any]) -> None:
        response = api.post(web.url + "/v1/bookings", json=body, timeout=10)
        statuses[conforms(spec, "/v1/bookings", "post", response)] += 1

    post()
    # Schema-valid bodies are mostly accepted (422 only for what JSON Schema cannot say,
    # such as whitespace-only names that are stripped to nothing).
    assert statuses[202] >= sum(statuses.values()) // 2, statuses


def _mutations(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def replace(body: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
        changed = dict(body)
        changed[key] = value
        return changed

    keys = st.sampled_from(["externalReference", "items", "customer", "beneficiaries",
                            "callbackUrl", "language", "reservationPolicy", "unexpected"])
    return st.one_of(
        json_values,
        st.builds(replace, valid, keys, json_values),
        st.builds(lambda b, k: {x: y for x, y in b.items() if x != k}, valid, keys),
    )


def test_invalid_booking_bodies_get_documented_client_errors(
    web: WebServer, spec: dict[str, Any], api: requests.Session, db: redis.Redis
) -> None:
    bodies = _mutations(SchemaStrategies(spec["components"]["schemas"]).ref("BookingRequest"))

    ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300)

    @FUZZ
    @given(body=bodies, idempotency=st.none() | ascii_text.filter(lambda v: v and v == v.strip()))
    def post(body: Any, idempotency: str | None) -> None:
        headers = {"Idempotency-Key": idempotency} if idempotency else {}
        response = api.post(web.url + "/v1/bookings", json=body, headers=headers, timeout=10)
        conforms(spec, "/v1/bookings", "post", response)

    post()


def test_listing_parameters_get_documented_answers(
    web: WebServer, spec: dict[str, Any], api: requests.Session
) -> None:
    parameters = spec["paths"]["/v1/bookings"]["get"]["parameters"]
    states = next(p for p in parameters if p["name"] == "state")["schema"]["enum"]
    junk = st.text(max_size=12)

    @FUZZ
    @given(
        state=st.none() | st.sampled_from(states) | junk,
        cursor=st.none() | junk,
        limit=st.none() | st.integers(-5, 300).map(str) | junk,
    )
    def get(state: str | None, cursor: str | None, limit: str | None) -> None:
        params = {k: v for k, v in (("state", state), ("cursor", cursor), ("limit", limit))
                  if v is not None}
        response = api.get(web.url + "/v1/bookings", params=params, timeout=10)
        conforms(spec, "/v1/bookings", "get", response)

    get()


def test_booking_paths_with_any_id_get_documented_answers(
    web: WebServer, spec: dict[str, Any], api: requests.Session
) -> None:
    operations = [
        ("/v1/bookings/{booking_id}", "get", ""),
        ("/v1/bookings/{booking_id}/cancel", "post", "/cancel"),
        ("/v1/bookings/{booking_id}/documents/refresh", "post", "/documents/refresh"),
    ]

    @FUZZ
    @given(booking_id=st.text(min_size=1, max_size=80), operation=st.sampled_from(operations))
    def call(booking_id: str, operation: tuple[str, str, str]) -> None:
        template, method, suffix = operation
        url = f"{web.url}/v1/bookings/{quote(booking_id, safe='')}{suffix}"
        response = api.request(method.upper(), url, timeout=10)
        assert conforms(spec, template, method, response) in (200, 202, 404, 409)

    call()


def test_random_webhook_deliveries_are_refused_and_enqueue_nothing(
    web: WebServer, spec: dict[str, Any], db: redis.Redis
) -> None:
    before = len(broker_messages(db))
    # Printable ASCII without surrounding blanks: what an HTTP client can send at all.
    header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                            max_size=80).filter(lambda v: v == v.strip())

    @FUZZ
    @given(
        path=st.sampled_from(["/webhooks/stripe", "/webhooks/payments"]),
        body=json_values,
        headers=st.fixed_dictionaries(
            {},
            optional={
                "Stripe-Signature": header_values.map(lambda v: "t=" + v),
                "webhook-id": header_values.filter(bool),
                "webhook-timestamp": st.integers(0, 2**40).map(str),
                "webhook-signature": header_values.map(lambda v: "v1," + v),
                "Content-Type": st.sampled_from(["application/json", "text/plain"]),
            },
        ),
    )
    def deliver(path: str, body: Any, headers: dict[str, str]) -> None:
        response = requests.post(web.url + path, data=json.dumps(body).encode(),
                                 headers=headers, timeout=10)
        assert response.status_code == 400, response.text  # unsigned: refused, never enqueued
        conforms(spec, path, "post", response)

    deliver()
    assert len(broker_messages(db)) == before
