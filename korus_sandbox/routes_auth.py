"""The OpenID Connect token endpoint (Keycloak-shaped) and the bearer check of `/v1/`.

Guarantees: client credentials come from the form (`client_id`, `client_secret`) or HTTP
Basic; wrong ones are a 401 `invalid_client`. `refresh_token` grants need the same
client credentials and a known, unlapsed refresh token (else 400 `invalid_grant`).
`expires_in` is whole seconds, at least 1, never more than the real lifetime rounded up
to one second. A `/v1/` call without a known, unlapsed bearer token is a Korus 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from urllib.parse import parse_qs, unquote

from korus_sandbox.context import SandboxContext
from korus_sandbox.errors import ApiError
from korus_sandbox.httpkit import JSON, Request, Response, Route, json_response
from korus_sandbox.ids import uuid7

TOKEN_PATH = "/realms/korusticket/protocol/openid-connect/token"  # noqa: S105 (a path)


def _oauth_error(status: int, error: str, description: str) -> Response:
    response = json_response(status, {"error": error, "error_description": description}, JSON)
    response.headers["Cache-Control"] = "no-store"
    return response


def _client_credentials(req: Request, form: dict[str, list[str]]) -> tuple[str, str]:
    authorization = req.header("Authorization") or ""
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return unquote(client_id), unquote(secret)
    return (form.get("client_id") or [""])[0], (form.get("client_secret") or [""])[0]


def token(ctx: SandboxContext, req: Request) -> Response:
    form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
    grant = (form.get("grant_type") or [""])[0]
    if not grant:
        return _oauth_error(400, "invalid_request", "Missing form parameter: grant_type")
    if grant not in ("client_credentials", "refresh_token"):
        return _oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")
    config = ctx.state.config
    client_id, secret = _client_credentials(req, form)
    known = hmac.compare_digest(client_id.encode(), config.client_id.encode())
    if not (known and hmac.compare_digest(secret.encode(), config.client_secret.encode())):
        return _oauth_error(401, "invalid_client", "Invalid client or Invalid client credentials")
    now = time.time()
    if grant == "refresh_token":
        refresh = (form.get("refresh_token") or [""])[0]
        if not ctx.state.refresh_valid(refresh, now):
            return _oauth_error(400, "invalid_grant", "Invalid refresh token")
    access, refresh_token, lifetime = ctx.state.issue_token(now)
    seconds = max(1, int(lifetime))
    response = json_response(
        200,
        {
            "access_token": access,
            "expires_in": seconds,
            "refresh_expires_in": seconds,
            "refresh_token": refresh_token,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": uuid7(),
            "scope": "profile email",
        },
        JSON,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def check_bearer(ctx: SandboxContext, req: Request) -> None:
    """Raise a Korus 401 unless the request carries a valid bearer token."""
    authorization = req.header("Authorization") or ""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(
            401,
            "Full authentication is required to access this resource.",
            {"WWW-Authenticate": 'Bearer realm="korusticket"'},
        )
    if not ctx.state.token_valid(value.strip(), time.time()):
        raise ApiError(
            401,
            "Invalid or expired JWT Token.",
            {"WWW-Authenticate": 'Bearer realm="korusticket", error="invalid_token"'},
        )


ROUTES = [Route("POST", TOKEN_PATH, token, auth=False)]
