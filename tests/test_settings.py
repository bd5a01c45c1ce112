"""Settings: read once, secrets hidden, a bad environment stops the process naming the variable."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.settings import Settings, describe_validation_error

BASE = {
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "KORUS_BASE_URL": "https://api.example.test",
    "KORUS_TOKEN": "secret-token-value",
}


def env_without(*names: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "KORUS_", "BROKER_", "STRIPE_", "PAYMENTS_"))
    }
    env.update({k: v for k, v in BASE.items() if k not in names})
    env.update(extra)
    return env


def test_comma_separated_secrets_allow_rotation_and_are_never_printed() -> None:
    settings = Settings(
        **{k.lower(): v for k, v in BASE.items()}, merchant_api_keys="new-key, old-key"
    )  # type: ignore[arg-type]
    assert [k.get_secret_value() for k in settings.merchant_api_keys] == ["new-key", "old-key"]
    assert "secret-token-value" not in repr(settings)
    assert "new-key" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"REDIS_URL": None}, "REDIS_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"KORUS_BASE_URL": "ftp://x"}, "KORUS_BASE_URL"),
        ({"KORUS_TOKEN": None}, "KORUS_CLIENT_ID"),
        ({"SWEEP_INTERVAL_SECONDS": "-1"}, "SWEEP_INTERVAL_SECONDS"),
        ({"CALLBACK_SECRET": "whsec_not*base64"}, "CALLBACK_SECRET"),
        ({"CALLBACK_SECRET": "whsec_"}, "CALLBACK_SECRET"),
        ({"PAYMENTS_WEBHOOK_SECRET": "whsec_b2s=,whsec_%%%"}, "PAYMENTS_WEBHOOK_SECRET"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_a b"}, "STRIPE_WEBHOOK_SECRET"),
        ({"CALLBACK_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-net"}, "CALLBACK_ALLOWED_NETWORKS"),
        ({"CALLBACK_URL": "http://shop.example/hooks"}, "CALLBACK_URL"),
        ({"CALLBACK_URL": "https://169.254.169.254/"}, "CALLBACK_URL"),
        ({"METRICS_PORT": "0"}, "METRICS_PORT"),
        ({"MERCHANT_API_KEYS": "shop-a:k1,shop-b:k1"}, "MERCHANT_API_KEYS"),
    ],
)
def test_bad_environment_names_the_variable(
    change: dict[str, str | None], variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("REDIS_", "KORUS_")):
            monkeypatch.delenv(name)
    values = {k.lower(): v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert variable in describe_validation_error(caught.value)


def test_an_unpadded_callback_secret_is_accepted_and_signs_like_the_reference_library(
) -> None:
    from standardwebhooks import Webhook

    from worker.booking.callbacks import sign

    unpadded = "whsec_" + base64.b64encode(b"merchant-secret-of-31-bytes-xyz").decode().rstrip("=")
    assert not unpadded.endswith("=")
    settings = Settings(**{k.lower(): v for k, v in BASE.items()},  # type: ignore[arg-type]
                        callback_secret=unpadded)
    assert settings.callback_secret is not None
    signature = sign(settings.callback_secret.get_secret_value(), "msg_1", int(time.time()), "{}")
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
               "webhook-signature": signature}
    assert Webhook(unpadded).verify("{}", headers) == {}


def test_merchant_key_entries_name_their_merchant_or_default() -> None:
    from worker.settings import merchant_entry

    assert merchant_entry("shop-a:k_live_1") == ("shop-a", "k_live_1")
    assert merchant_entry("k_live_plain") == ("default", "k_live_plain")
    assert merchant_entry(":k") == ("default", ":k")  # no name: the whole entry is the key


def test_secret_errors_do_not_quote_the_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{k.lower(): v for k, v in BASE.items()},  # type: ignore[arg-type]
                 callback_secret="whsec_s3cr3t*value")
    assert "s3cr3t" not in describe_validation_error(caught.value)


def test_cli_refuses_to_start_without_redis_url_and_names_it() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "booking-worker"), "status", "bk_x"],
        env=env_without("REDIS_URL"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
