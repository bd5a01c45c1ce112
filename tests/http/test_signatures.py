"""The verifiers against the official libraries, on arbitrary bodies (no server needed)."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from worker.http.signatures import SignatureError, StandardWebhooksVerifier, StripeVerifier

STRIPE_SECRETS = ["whsec_new_abc", "whsec_old_def"]
PAYMENT_SECRETS = [
    "whsec_" + base64.b64encode(b"k" * 24).decode(),
    # Unpadded base64, as some providers print it: the library accepts it, so do we.
    "whsec_" + base64.b64encode(b"old-key-bytes").decode().rstrip("="),
]
bodies = st.text(max_size=300).map(str.encode)
ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,40}\Z")


def stripe_verifier() -> StripeVerifier:
    return StripeVerifier.from_settings([SecretStr(s) for s in STRIPE_SECRETS], 300)


def payments_verifier() -> StandardWebhooksVerifier:
    return StandardWebhooksVerifier.from_settings([SecretStr(s) for s in PAYMENT_SECRETS], 300)


def flip(data: bytes, index: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@settings(max_examples=60, deadline=None)
@given(body=bodies, secret=st.sampled_from(STRIPE_SECRETS), index=st.integers(0, 10_000))
def test_stripe_accepts_what_stripe_signs_and_refuses_a_flipped_byte(
    body: bytes, secret: str, index: int
) -> None:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret)
    stripe.WebhookSignature.verify_header(body.decode(), header, secret, 300)  # the oracle

    stripe_verifier().verify(body, header)
    with pytest.raises(SignatureError):
        stripe_verifier().verify(flip(body + b" ", index), header)


@settings(max_examples=60, deadline=None)
@given(
    body=bodies, msg_id=ids, secret=st.sampled_from(PAYMENT_SECRETS), index=st.integers(0, 10_000)
)
def test_standard_webhooks_accepts_what_the_library_signs_and_refuses_a_flipped_byte(
    body: bytes, msg_id: str, secret: str, index: int
) -> None:
    now = datetime.now(UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, now, body.decode())
    timestamp = str(int(now.timestamp()))
    headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
    standardwebhooks.Webhook(secret).verify(body, headers, json_parse=False)  # the oracle

    payments_verifier().verify(body, msg_id, timestamp, signature)
    with pytest.raises(SignatureError):
        payments_verifier().verify(flip(body + b" ", index), msg_id, timestamp, signature)


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_both_refuse_timestamps_outside_the_tolerance(skew: int) -> None:
    moment = int(time.time()) + skew
    body = b'{"ok": true}'
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), STRIPE_SECRETS[0], timestamp=moment
    )
    signature = standardwebhooks.Webhook(PAYMENT_SECRETS[0]).sign(
        "msg_1", datetime.fromtimestamp(moment, UTC), body.decode()
    )

    with pytest.raises(SignatureError, match="timestamp"):
        stripe_verifier().verify(body, header)
    with pytest.raises(SignatureError, match="timestamp"):
        payments_verifier().verify(body, "msg_1", str(moment), signature)


@pytest.mark.parametrize("skew", [-299, 0, 299])
def test_both_accept_timestamps_inside_the_tolerance(skew: int) -> None:
    moment = int(time.time()) + skew
    body = b"{}"
    header = stripe.WebhookSignature.generate_signature_header("{}", STRIPE_SECRETS[1], moment)
    signature = standardwebhooks.Webhook(PAYMENT_SECRETS[1]).sign(
        "m", datetime.fromtimestamp(moment, UTC), "{}"
    )

    stripe_verifier().verify(body, header)
    payments_verifier().verify(body, "m", str(moment), signature)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=,v1=" + "0" * 64,
        "v1=" + "0" * 64,
        "t=1,t=2,v1=" + "0" * 64,
        "t=12.5,v1=" + "0" * 64,
        "t={now},v1=zz",
    ],
)
def test_stripe_refuses_malformed_headers(header: str) -> None:
    with pytest.raises(SignatureError):
        stripe_verifier().verify(b"{}", header.format(now=int(time.time())))


@pytest.mark.parametrize(
    ("msg_id", "timestamp", "signature"),
    [
        (None, "{now}", "v1,AAAA"),
        ("m", None, "v1,AAAA"),
        ("m", "{now}", None),
        ("m", "{now}", "v1a,AAAA"),
        ("m", "{now}", "v1,not*base64"),
        ("m", "1e9", "v1,AAAA"),
        ("with space", "{now}", "v1,AAAA"),
    ],
)
def test_standard_webhooks_refuses_malformed_headers(
    msg_id: str | None, timestamp: str | None, signature: str | None
) -> None:
    stamp = timestamp.format(now=int(time.time())) if timestamp else None
    with pytest.raises(SignatureError):
        payments_verifier().verify(b"{}", msg_id, stamp, signature)


def test_a_secret_that_is_not_base64_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="PAYMENTS_WEBHOOK_SECRET"):
        StandardWebhooksVerifier.from_settings([SecretStr("whsec_***not-base64***")], 300)
