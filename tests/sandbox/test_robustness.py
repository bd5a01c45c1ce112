"""Malformed input never yields a 500; concurrency never oversells."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.server import Sandbox, SandboxConfig, start_sandbox
from tests.sandbox.helpers import KorusApi, fetch_token
from tests.support.booking import reservation_item as item

Catalog = dict[str, dict[str, Any]]
BULK_ROUTES = ("/v1/booking/reservations/_bulk", "/v1/booking/orders/_bulk")


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Sandbox, KorusApi, Catalog]]:
    """One sandbox for the generated cases (hypothesis reuses it across examples)."""
    with start_sandbox(SandboxConfig()) as sb, SandboxAdmin(sb.url) as admin:
        yield sb, KorusApi(sb.url, fetch_token(sb.token_url)), admin.catalog()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "items",
    "offer",
    "quantity",
    "ticketSessions",
    "ticket",
    "session",
    "formData",
    "form",
    "fields",
    "field",
    "value",
    "reservations",
    "customer",
    "firstname",
    "lastname",
    "email",
    "optin",
    "externalReference",
]
keyed_objects = st.recursive(
    json_values,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=20,
)


def _assert_korus_4xx(response: requests.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["@type"] in ("Error", "ConstraintViolationList")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values | keyed_objects, route=st.sampled_from(BULK_ROUTES))
def test_random_json_never_gives_a_server_error(
    shared: tuple[Sandbox, KorusApi, Catalog], body: Any, route: str
) -> None:
    _, korus, _ = shared
    _assert_korus_4xx(korus.post(route, body))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    product=st.sampled_from(["Day Pass", "Timed Museum Entry", "Guided Tour With Form"]),
    quantity=st.integers(min_value=-2, max_value=3) | st.just(10**30),
    mutation=st.dictionaries(
        st.sampled_from(["offer", "ticket", "session", "formData"]), json_values, max_size=2
    ),
)
def test_almost_valid_reservations_never_give_a_server_error(
    shared: tuple[Sandbox, KorusApi, Catalog],
    product: str,
    quantity: int,
    mutation: dict[str, Any],
) -> None:
    _, korus, catalog = shared
    body = item(catalog[product], 1)
    body["quantity"] = quantity
    for key, value in mutation.items():
        (body if key == "offer" else body["ticketSessions"][0])[key] = value
    _assert_korus_4xx(korus.reserve([body]))


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"", 400),
        (b"[" * 100_000, 400),
    ],
)
def test_malformed_bodies_are_korus_400s(korus: KorusApi, raw: bytes, status: int) -> None:
    for route in BULK_ROUTES:
        response = korus.session.post(
            korus.base_url + route,
            data=raw,
            timeout=5,
            headers={"Content-Type": "application/ld+json"},
        )
        assert response.status_code == status
        assert response.json()["@type"] == "Error"


def test_unknown_routes_methods_and_media_types(korus: KorusApi, sandbox: Sandbox) -> None:
    assert korus.get("/v1/nowhere").status_code == 404
    assert korus.get("/v1/nowhere").json()["@type"] == "Error"
    wrong_method = korus.session.delete(sandbox.url + "/v1/booking/orders/_bulk", timeout=5)
    assert wrong_method.status_code == 405
    assert "POST" in wrong_method.headers["Allow"]
    text = korus.session.post(
        sandbox.url + "/v1/booking/orders/_bulk",
        data="x=1",
        timeout=5,
        headers={"Content-Type": "text/plain"},
    )
    assert text.status_code == 415


def _raw(sandbox: Sandbox, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"BREW /v1/ticketing/catalogs HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
        (b"garbage\r\n\r\n", b"400"),
        (
            b"POST /v1/booking/orders/_bulk HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"400",
        ),
        (
            b"POST /v1/booking/orders/_bulk HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 99999999\r\n\r\n",
            b"413",
        ),
    ],
)
def test_broken_http_gets_a_json_answer(sandbox: Sandbox, payload: bytes, status: bytes) -> None:
    answer = _raw(sandbox, payload)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == status
    assert json.loads(body)["@type"] == "Error"


def test_chunked_bodies_are_read(korus: KorusApi, catalog: Catalog) -> None:
    body = json.dumps({"items": [item(catalog["Day Pass"])]}).encode()
    response = korus.session.post(
        korus.base_url + "/v1/booking/reservations/_bulk",
        data=iter([body[:10], body[10:]]),
        timeout=5,
        headers={"Content-Type": "application/ld+json"},
    )
    assert response.status_code == 201, response.text


def test_concurrent_reservations_never_oversell(
    sandbox: Sandbox, catalog: Catalog, admin: SandboxAdmin
) -> None:
    token = fetch_token(sandbox.token_url)
    concert = catalog["Limited Concert"]
    statuses: list[int] = []
    start = threading.Barrier(12)

    def reserve() -> None:
        api = KorusApi(sandbox.url, token)
        start.wait(timeout=5)
        response = api.reserve([item(concert)])
        statuses.append(response.status_code if not response.json().get("reservations") else 1)

    threads = [threading.Thread(target=reserve) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(statuses) == [1] * 5 + [422] * 7
    assert len(admin.reservations()) == 5
    api = KorusApi(sandbox.url, token)
    held = api.get("/v1/booking/reservations", params={"itemsPerPage": 50}).json()["member"]
    seats = {r["items"][0]["offerTickets"][0]["seating"]["seatNumber"] for r in held}
    assert seats == {"1", "2", "3", "4", "5"}
    assert api.available(concert) == 0


def test_stop_closes_kept_alive_connections() -> None:
    sb = start_sandbox(SandboxConfig())
    api = KorusApi(sb.url, fetch_token(sb.token_url))
    assert api.get("/v1/ticketing/catalogs").status_code == 200
    sb.stop()
    with pytest.raises(requests.ConnectionError):
        api.get("/v1/ticketing/catalogs")
