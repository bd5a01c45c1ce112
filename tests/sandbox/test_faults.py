"""Every fault kind fires as configured; commits happen exactly when promised."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.server import Sandbox, SandboxConfig, start_sandbox
from tests.sandbox.helpers import KorusApi, fetch_token, request_token
from tests.support.booking import reservation_item as item
from tests.support.korus import TOKEN_CALL

Catalog = dict[str, dict[str, Any]]
ORDERS = "POST /v1/booking/orders/_bulk"
RESERVE = "POST /v1/booking/reservations/_bulk"


def test_error_and_rate_limit_answer_without_applying_the_change(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    admin.set_fault(RESERVE, next=["error", "rate_limit"], retry_after=2)
    error = korus.reserve([item(catalog["Day Pass"])])
    assert error.status_code == 503
    assert error.json()["@type"] == "Error"
    limited = korus.reserve([item(catalog["Day Pass"])])
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert admin.reservations() == []
    assert korus.reserve([item(catalog["Day Pass"])]).status_code == 201  # queue consumed
    assert len(admin.reservations()) == 1


def test_rate_limit_without_retry_after(korus: KorusApi, admin: SandboxAdmin) -> None:
    admin.set_fault("GET /v1/ticketing/catalogs", next=["rate_limit"], retry_after=None)
    response = korus.get("/v1/ticketing/catalogs")
    assert response.status_code == 429
    assert "Retry-After" not in response.headers


def test_timeout_before_commit_changes_nothing(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    reservation = korus.reserve_one(catalog["Day Pass"])
    admin.set_fault(ORDERS, next=["timeout_before_commit"], timeout_seconds=1.0)
    with pytest.raises(requests.ReadTimeout):
        korus.order([reservation["@id"]], timeout=(2, 0.3))
    assert admin.orders() == []
    assert korus.order([reservation["@id"]]).status_code == 200


def test_timeout_after_commit_really_commits(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    reservation = korus.reserve_one(catalog["Day Pass"])
    admin.set_fault(ORDERS, next=["timeout_after_commit"], timeout_seconds=1.0)
    with pytest.raises(requests.ReadTimeout):
        korus.order([reservation["@id"]], "LOST-ANSWER", timeout=(2, 0.3))
    (order,) = admin.orders()
    assert order["reservation"] == reservation["@id"]
    retried = korus.order([reservation["@id"]], "LOST-ANSWER")
    assert retried.status_code == 422
    violation = retried.json()["violations"][0]
    assert violation["propertyPath"] == "reservations[0].sandboxAlreadyOrdered"
    found = korus.get("/v1/booking/orders", params={"external_reference": "LOST-ANSWER"}).json()
    assert [o["id"] for o in found["member"]] == [order["id"]]


def test_a_patient_client_sees_the_504(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    reservation = korus.reserve_one(catalog["Day Pass"])
    admin.set_fault(ORDERS, next=["timeout_after_commit"], timeout_seconds=0.2)
    response = korus.order([reservation["@id"]])
    assert response.status_code == 504
    assert response.json()["@type"] == "Error"
    assert len(admin.orders()) == 1


def test_drop_commits_then_closes_without_an_answer(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    reservation = korus.reserve_one(catalog["Day Pass"])
    admin.set_fault(ORDERS, next=["drop"])
    with pytest.raises(requests.ConnectionError):
        korus.order([reservation["@id"]])
    assert len(admin.orders()) == 1


def test_drop_before_commit_closes_without_applying(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    admin.set_fault(RESERVE, next=["drop_before_commit"])
    with pytest.raises(requests.ConnectionError):
        korus.reserve([item(catalog["Day Pass"])])
    assert admin.reservations() == []
    assert korus.reserve([item(catalog["Day Pass"])]).status_code == 201


def test_latency_is_added_to_every_call(korus: KorusApi, admin: SandboxAdmin) -> None:
    admin.set_fault("*", latency_ms=150)
    started = time.monotonic()
    assert korus.get("/v1/ticketing/catalogs").status_code == 200
    assert time.monotonic() - started >= 0.15


def test_rates_fire_and_are_reproducible_from_the_seed() -> None:
    def statuses(seed: int) -> list[int]:
        config = SandboxConfig(seed=seed, faults=["GET /v1/ticketing/catalogs:error_rate=0.5"])
        with start_sandbox(config) as sb:
            api = KorusApi(sb.url, fetch_token(sb.token_url))
            return [api.get("/v1/ticketing/catalogs").status_code for _ in range(30)]

    first = statuses(3)
    assert set(first) == {200, 503}
    assert statuses(3) == first


def test_certain_failure_rates_always_fire(korus: KorusApi, admin: SandboxAdmin) -> None:
    admin.set_fault("*", rate_limit_rate=1.0)
    assert {korus.get("/v1/ticketing/catalogs").status_code for _ in range(5)} == {429}


def test_star_covers_the_token_route_but_never_the_admin_routes(
    sandbox: Sandbox, admin: SandboxAdmin
) -> None:
    admin.set_fault("*", error_rate=1.0)
    token = request_token(sandbox.token_url)
    assert token.status_code == 503
    assert admin.orders() == []
    assert admin.faults()[0]["error_rate"] == 1.0
    admin.clear_faults()
    assert admin.faults() == []
    assert fetch_token(sandbox.token_url)


def test_the_endpoint_rule_wins_over_star(korus: KorusApi, admin: SandboxAdmin) -> None:
    admin.set_fault("*", error_rate=1.0)
    admin.set_fault("GET /v1/ticketing/catalogs", latency_ms=0)
    assert korus.get("/v1/ticketing/catalogs").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"endpoint": "GET /nowhere"},
        {"endpoint": ORDERS, "next": ["explode"]},
        {"endpoint": ORDERS, "error_rate": 2},
        {"endpoint": ORDERS, "error_rate": 0.6, "drop_rate": 0.6},
        {"endpoint": ORDERS, "latency_ms": "slow"},
        {"endpoint": ORDERS, "colour": "red"},
        {},
    ],
)
def test_bad_fault_rules_are_refused(sandbox: Sandbox, body: dict[str, Any]) -> None:
    response = requests.put(sandbox.url + "/_sandbox/faults", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["@type"] == "Error"


def test_reset_clears_faults_and_counts_calls_per_route_template(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin, sandbox: Sandbox
) -> None:
    order = korus.order_one(catalog["Day Pass"])
    korus.get(order["@id"])
    korus.get(order["@id"])
    calls = admin.calls()
    assert calls[TOKEN_CALL] == 1
    assert calls[RESERVE] == 1
    assert calls[ORDERS] == 1
    assert calls["GET /v1/booking/orders/{id}"] == 2
    assert not any(name.startswith(("GET /_sandbox", "POST /_sandbox")) for name in calls)
    admin.set_fault(ORDERS, error_rate=1.0)
    admin.reset()
    assert admin.calls() == {}
    assert admin.faults() == []
    assert admin.orders() == []
    assert korus.available(catalog["Day Pass"]) == 1_000_000
