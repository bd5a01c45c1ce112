"""Webhook signature verification on the raw body: Stripe and Standard Webhooks.

Both schemes: HMAC-SHA256 compared with `hmac.compare_digest`, a timestamp that must lie
within `tolerance` seconds of now in either direction (a replay later than that, or a
clock far ahead, is refused), several signatures per header (any one may match), and
several configured secrets (rotation: each one is valid). Verified against what the
official `stripe` and `standardwebhooks` libraries sign (tests/http).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from worker.settings import whsec_key

_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MSG_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
# A header with more parts than this is not from a provider (Stripe sends one v1 per
# active secret, a few at most).
_MAX_SIGNATURES = 16


class SignatureError(ValueError):
    """The request is not provably from the provider; the message says why (no secrets)."""


def _check_timestamp(raw: str | None, tolerance: int, now: float | None) -> int:
    if raw is None or not _TIMESTAMP.match(raw):
        raise SignatureError("missing or malformed timestamp")
    timestamp = int(raw)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise SignatureError("timestamp too old (outside the tolerance)")
    if timestamp > current + tolerance:
        raise SignatureError("timestamp too far in the future")
    return timestamp


@dataclass(frozen=True)
class StripeVerifier:
    """`Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]` over `"{t}.{raw body}"`.

    The HMAC key is the endpoint secret string itself (`whsec_...`, UTF-8), as in
    `stripe.WebhookSignature`. Schemes other than v1 (v0 test signatures) are ignored.
    """

    secrets: tuple[bytes, ...]
    tolerance: int

    @classmethod
    def from_settings(cls, secrets: Sequence[SecretStr], tolerance: int) -> StripeVerifier:
        return cls(tuple(s.get_secret_value().encode("utf-8") for s in secrets), tolerance)

    def verify(self, body: bytes, header: str | None, *, now: float | None = None) -> None:
        if not header:
            raise SignatureError("missing Stripe-Signature header")
        timestamps: list[str] = []
        signatures: list[bytes] = []
        for item in header.split(",")[: _MAX_SIGNATURES + 2]:
            key, sep, value = item.strip().partition("=")
            if not sep:
                continue
            if key == "t":
                timestamps.append(value)
            elif key == "v1" and _HEX_SHA256.match(value):
                signatures.append(value.encode("ascii"))
        if len(timestamps) != 1:
            raise SignatureError("Stripe-Signature needs exactly one t=")
        timestamp = _check_timestamp(timestamps[0], self.tolerance, now)
        if not signatures:
            raise SignatureError("no v1 signature in Stripe-Signature")
        signed = f"{timestamp}.".encode() + body
        for secret in self.secrets:
            expected = hmac.new(secret, signed, hashlib.sha256).hexdigest().encode("ascii")
            if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
                return
        raise SignatureError("no signature matches")


def decode_whsec(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after the `whsec_` prefix."""
    try:
        return whsec_key(secret)
    except ValueError as error:
        raise ValueError(f"a PAYMENTS_WEBHOOK_SECRET entry {error}") from None


@dataclass(frozen=True)
class StandardWebhooksVerifier:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64> [v1,<b64> ...]`.

    HMAC-SHA256 (base64) of `"{id}.{timestamp}.{raw body}"`. Versions other than v1
    (e.g. asymmetric v1a) are ignored, so a header with only those is refused.
    """

    keys: tuple[bytes, ...]
    tolerance: int

    @classmethod
    def from_settings(
        cls, secrets: Sequence[SecretStr], tolerance: int
    ) -> StandardWebhooksVerifier:
        return cls(tuple(decode_whsec(s.get_secret_value()) for s in secrets), tolerance)

    def verify(
        self,
        body: bytes,
        msg_id: str | None,
        timestamp: str | None,
        signature: str | None,
        *,
        now: float | None = None,
    ) -> None:
        if not msg_id or not _MSG_ID.match(msg_id):
            raise SignatureError("missing or malformed webhook-id")
        if not signature:
            raise SignatureError("missing webhook-signature")
        checked = _check_timestamp(timestamp, self.tolerance, now)
        candidates: list[bytes] = []
        for part in signature.split(" ")[:_MAX_SIGNATURES]:
            version, sep, encoded = part.partition(",")
            if version != "v1" or not sep:
                continue
            try:
                candidates.append(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError):
                continue
        if not candidates:
            raise SignatureError("no v1 signature in webhook-signature")
        signed = f"{msg_id}.{checked}.".encode() + body
        for key in self.keys:
            expected = hmac.new(key, signed, hashlib.sha256).digest()
            if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
                return
        raise SignatureError("no signature matches")
