"""Merchant API keys: `Authorization: Bearer <key>`, any key of MERCHANT_API_KEYS.

An entry is `name:key` (a merchant and one of its keys) or a plain `key` (the default
merchant, `default`). The presented key is compared with `hmac.compare_digest` against
every configured key, without stopping at the first match, so the time taken does not say
which key (or how much of one) matched.

The merchant NAME is the identity: it namespaces Idempotency-Keys and is stored on each
booking, and a merchant reads, lists, cancels and refreshes only its own bookings (another
merchant's id answers 404). Rotating a key (`shop:new`, then drop `shop:old`) keeps both
its idempotency and its bookings. Bookings written before merchant names existed carry a
key fingerprint (`mk_...`); they belong to the default merchant.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Sequence

import falcon
from pydantic import SecretStr

from worker.http.problems import UNAUTHORIZED, ApiProblem
from worker.settings import DEFAULT_MERCHANT, merchant_entry

log = logging.getLogger("booking.http")

# Identities of bookings made before named merchants: `mk_` + 16 hex (a key fingerprint).
_LEGACY_IDENTITY = re.compile(r"^mk_[0-9a-f]{16}$")


def owns(merchant: str, booking_merchant: str) -> bool:
    """Whether `merchant` may see a booking recorded for `booking_merchant`."""
    if booking_merchant == merchant:
        return True
    return merchant == DEFAULT_MERCHANT and bool(_LEGACY_IDENTITY.match(booking_merchant))


class MerchantKeys:
    def __init__(self, keys: Sequence[SecretStr]) -> None:
        entries = [merchant_entry(k.get_secret_value().strip()) for k in keys]
        self._keys = [(key.encode("utf-8"), name) for name, key in entries if key]
        if not self._keys:
            log.warning("MERCHANT_API_KEYS is empty: every merchant API request gets 401")

    def identify(self, authorization: str | None) -> str | None:
        """The merchant name of a valid `Bearer` credential, None otherwise."""
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        presented = token.strip().encode("utf-8")
        if not presented:
            return None
        found: str | None = None
        for key, merchant in self._keys:
            # No early exit: every key is compared whatever the outcome.
            if hmac.compare_digest(presented, key) and found is None:
                found = merchant
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
