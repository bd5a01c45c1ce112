"""Korus paths the tests name, as documented (korus-api.md): the token endpoint."""

from __future__ import annotations

TOKEN_PATH = "/realms/korusticket/protocol/openid-connect/token"
# How the sandbox's call counts (`/_sandbox/calls`) name a token request.
TOKEN_CALL = f"POST {TOKEN_PATH}"
