"""The token endpoint and the bearer check of every /v1/ route."""

from __future__ import annotations

import time

import requests

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.server import Sandbox, SandboxConfig, start_sandbox
from tests.sandbox.helpers import KorusApi, fetch_token
from tests.support.waits import wait_until

CATALOGS = "/v1/ticketing/catalogs"


def _grant(sandbox: Sandbox, **form: str) -> requests.Response:
    return requests.post(sandbox.token_url, data=form, timeout=5)


def test_client_credentials_give_a_bearer_token_that_opens_the_api(sandbox: Sandbox) -> None:
    response = _grant(
        sandbox, grant_type="client_credentials", client_id="sandbox", client_secret="sandbox"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert body["refresh_expires_in"] == 1800
    assert body["refresh_token"]
    assert KorusApi(sandbox.url, body["access_token"]).get(CATALOGS).status_code == 200


def test_wrong_secret_is_refused_with_401_json(sandbox: Sandbox) -> None:
    response = _grant(
        sandbox, grant_type="client_credentials", client_id="sandbox", client_secret="nope"
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_http_basic_client_authentication_is_accepted(sandbox: Sandbox) -> None:
    response = requests.post(
        sandbox.token_url,
        data={"grant_type": "client_credentials"},
        auth=("sandbox", "sandbox"),
        timeout=5,
    )
    assert response.status_code == 200


def test_refresh_token_grant_gives_a_new_working_token(sandbox: Sandbox) -> None:
    first = _grant(
        sandbox, grant_type="client_credentials", client_id="sandbox", client_secret="sandbox"
    ).json()
    refreshed = _grant(
        sandbox,
        grant_type="refresh_token",
        client_id="sandbox",
        client_secret="sandbox",
        refresh_token=first["refresh_token"],
    )
    assert refreshed.status_code == 200
    token = refreshed.json()["access_token"]
    assert token != first["access_token"]
    assert KorusApi(sandbox.url, token).get(CATALOGS).status_code == 200
    bad = _grant(
        sandbox,
        grant_type="refresh_token",
        client_id="sandbox",
        client_secret="sandbox",
        refresh_token="forged",
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"


def test_unsupported_grant_is_a_400(sandbox: Sandbox) -> None:
    assert _grant(sandbox, grant_type="password").status_code == 400
    assert _grant(sandbox).status_code == 400


def test_missing_or_unknown_token_is_a_korus_401(sandbox: Sandbox) -> None:
    missing = requests.get(sandbox.url + CATALOGS, timeout=5)
    unknown = KorusApi(sandbox.url, "made-up").get(CATALOGS)
    for response in (missing, unknown):
        assert response.status_code == 401
        body = response.json()
        assert body["@type"] == "Error"
        assert body["status"] == 401
        assert {"title", "detail", "type", "description", "instance"} <= set(body)


def test_a_lapsed_token_is_refused(sandbox: Sandbox, admin: SandboxAdmin) -> None:
    admin.configure(token_lifetime_seconds=0.3)
    token = fetch_token(sandbox.token_url)
    api = KorusApi(sandbox.url, token)
    assert api.get(CATALOGS).status_code == 200
    started = time.monotonic()
    assert wait_until(lambda: api.get(CATALOGS).status_code == 401, timeout=3)
    assert time.monotonic() - started < 3


def test_configured_client_credentials_replace_the_defaults() -> None:
    config = SandboxConfig(client_id="shop", client_secret="s3cret")
    with start_sandbox(config) as sb:
        assert fetch_token(sb.token_url, "shop", "s3cret")
        refused = _grant(
            sb, grant_type="client_credentials", client_id="sandbox", client_secret="sandbox"
        )
        assert refused.status_code == 401


def test_tokens_survive_a_reset(sandbox: Sandbox, admin: SandboxAdmin, korus: KorusApi) -> None:
    admin.reset()
    assert korus.get(CATALOGS).status_code == 200
