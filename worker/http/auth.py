"""Merchant API keys: `Authorization: Bearer <key>`, any key of MERCHANT_API_KEYS.

The presented key is compared with `hmac.compare_digest` against every configured key,
without stopping at the first match, so the time taken does not say which key (or how
much of one) matched. Several keys exist for rotation: add the new key, move the shop to
it, remove the old one.

The merchant identity that namespaces Idempotency-Keys (and is stored on the booking) is
a short SHA-256 fingerprint of the key, never the key: two requests are "the same
merchant" for idempotency only when they carry the same key. Reads are not partitioned
by key: the deployment serves one merchant whose keys rotate, and a booking created with
an old key stays readable with the new one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence

import falcon
from pydantic import SecretStr

from worker.http.problems import UNAUTHORIZED, ApiProblem

log = logging.getLogger("booking.http")


def fingerprint(key: bytes) -> str:
    """`mk_` + 16 hex digits of SHA-256: names a key in Redis and logs, reveals nothing."""
    return "mk_" + hashlib.sha256(b"booking-worker merchant key\x00" + key).hexdigest()[:16]


class MerchantKeys:
    def __init__(self, keys: Sequence[SecretStr]) -> None:
        raw = [k.get_secret_value().encode("utf-8") for k in keys]
        self._keys = [(key, fingerprint(key)) for key in raw if key]
        if not self._keys:
            log.warning("MERCHANT_API_KEYS is empty: every merchant API request gets 401")

    def identify(self, authorization: str | None) -> str | None:
        """The merchant identity of a valid `Bearer` credential, None otherwise."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        presented = token.strip().encode("utf-8")
        if not presented:
            return None
        found: str | None = None
        for key, identity in self._keys:
            # No early exit: every key is compared whatever the outcome.
            if hmac.compare_digest(presented, key) and found is None:
                found = identity
        return found


class MerchantAuthMiddleware:
    """401 problem for resources marked `requires_merchant = True` without a valid key.

    Runs after routing, so an unknown route is a 404 and a wrong method a 405 whatever
    the credentials; webhooks, health, metrics and the spec are not marked.
    """

    def __init__(self, keys: MerchantKeys) -> None:
        self.keys = keys

    def process_resource(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        params: dict[str, object],
    ) -> None:
        if resource is None or not getattr(resource, "requires_merchant", False):
            return
        if not hasattr(resource, f"on_{req.method.lower()}"):
            return  # Falcon answers 405 (or OPTIONS) itself
        merchant = self.keys.identify(req.get_header("Authorization"))
        if merchant is None:
            raise ApiProblem(
                401,
                type=UNAUTHORIZED,
                title="Unauthorized",
                detail="send Authorization: Bearer <merchant API key>",
                headers={"WWW-Authenticate": 'Bearer realm="merchant-api"'},
            )
        req.context.merchant = merchant
