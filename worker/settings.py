"""One typed settings object, read once from the environment (and `.env`).

Nothing else in the code reads `os.environ`. A missing or malformed value stops the
process at start with a message naming the variable (see `load_settings`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
import sys
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.redis_connect import is_cluster_url, parse_cluster_url

if TYPE_CHECKING:
    from worker.booking.callback_transport import TargetPolicy as CallbackPolicy

ReservationPolicy = Literal["all_or_nothing", "partial"]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def whsec_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret `whsec_<base64>` (padding optional, as in
    the reference library). ValueError, never quoting the secret, when it is not one."""
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not whsec_<base64> (the secret itself is not shown)") from None
    if not key:
        raise ValueError("is empty after whsec_")
    return key


DEFAULT_MERCHANT = "default"
MERCHANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def merchant_entry(entry: str) -> tuple[str, str]:
    """(merchant, key) of a MERCHANT_API_KEYS entry: `name:key`, or a plain key (the
    default merchant)."""
    name, sep, key = entry.partition(":")
    if sep and MERCHANT_NAME.match(name) and key:
        return name, key
    return DEFAULT_MERCHANT, entry


class Settings(BaseSettings):
    """Every setting of design.md; names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    redis_url: str = Field(
        description="Redis for booking state, locks and dedupe keys; redis+cluster://host:port"
        "[,host:port...] for a Redis Cluster (worker/redis_connect.py)."
    )
    broker_url: str | None = Field(default=None, description="Celery broker; REDIS_URL if unset.")

    korus_base_url: str = Field(description="Korus API root, e.g. https://api.korusticket.com")
    korus_client_id: str | None = None
    korus_client_secret: SecretStr | None = None
    korus_token_url: str | None = None
    korus_token: SecretStr | None = None
    korus_language: str = "en"
    korus_connect_timeout: float = Field(default=3.05, gt=0)
    korus_read_timeout: float = Field(default=20.0, gt=0)
    # How long a worker waits for another one refreshing the shared token.
    korus_token_wait_seconds: float = Field(default=10.0, gt=0)
    # An order call's lease covers all the call can take (see order_lease_seconds) plus
    # this margin: until it ends, no other task may conclude that the call was lost.
    order_lease_margin_seconds: float = Field(default=5.0, ge=0)
    # After Korus refused an order call (a 422 other than documented expiry, or
    # failedOrders) and the orders listing does not show the order, the listing may be
    # lagging: it is read again with backoff for this long, then a person is alerted.
    # Never an automatic refund.
    order_reconcile_window_seconds: float = Field(default=1800.0, gt=0)
    # How long an empty or partial document listing (fewer documents than the order
    # answer named) is waited for, with backoff, before a person is alerted.
    documents_listing_wait_seconds: float = Field(default=1800.0, gt=0)
    # Longest pause between two looks at a lagging listing (orders or documents).
    listing_backoff_cap_seconds: float = Field(default=60.0, gt=0)

    # Rotation: each webhook secret variable takes a comma-separated list; all are valid.
    stripe_webhook_secret: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    payments_webhook_secret: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    webhook_tolerance_seconds: int = Field(default=300, gt=0)
    webhook_dedupe_ttl_seconds: int = Field(default=3 * 24 * 3600, gt=0)
    merchant_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    callback_url: str | None = None
    callback_secret: SecretStr | None = None
    callback_timeout_seconds: float = Field(default=5.0, gt=0)
    callback_max_attempts: int = Field(default=8, ge=1)
    # Callback targets (worker.booking.callback_transport): https only unless allowed;
    # optional host allow-list; networks exempt from the non-public address refusal (a
    # merchant on a private network, local development). Comma-separated lists.
    callback_allow_http: bool = False
    callback_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    callback_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # /metrics: on a listener of its own in the web master (METRICS_PORT, bound to
    # METRICS_HOST), or on the public port for `Authorization: Bearer <METRICS_TOKEN>`.
    # With neither, the public port answers 404 for it.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_token: SecretStr | None = None

    # Callback retries wait base * 4^n, capped: with the defaults the 8 attempts span
    # 60+240+960+3840+15360+43200+43200 s (about 30 h) before the callback_failed alert.
    callback_backoff_base_seconds: float = Field(default=60.0, gt=0)
    callback_backoff_cap_seconds: float = Field(default=12 * 3600.0, gt=0)

    sentry_dsn: SecretStr | None = None
    sentry_environment: str = "development"
    # Share of transactions traced (performance); errors and cron check-ins are always sent.
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0, le=1)

    # `user:password` (comma-separated for several users). Flower reads FLOWER_BASIC_AUTH
    # from the environment itself; the Procfile passes it too and refuses to start without.
    flower_basic_auth: SecretStr | None = None

    # Workers and beat serve /healthz and /readyz on this port when set (worker/probes.py).
    health_port: int | None = Field(default=None, ge=1, le=65535)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # text: one line per record for a terminal; json: one object per line for collectors.
    log_format: Literal["text", "json"] = "text"

    reservation_policy: ReservationPolicy = "all_or_nothing"
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    sweep_batch_size: int = Field(default=500, ge=1)
    cancel_margin_seconds: int = Field(default=60, ge=0)
    stuck_after_seconds: int = Field(default=300, ge=1)
    retention_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    # Retries of a step after transient errors (Korus 5xx/429/timeouts, Redis errors, a
    # lost compare-and-set race), counted in the booking record, then retries_exhausted.
    task_max_retries: int = Field(default=12, ge=0)
    # Retries of a step after an unexpected exception (a bug, a malformed answer), then
    # the booking is parked with a step_failed alert.
    task_max_unexpected_retries: int = Field(default=3, ge=0)
    retry_backoff_cap_seconds: int = Field(default=300, ge=1)
    # Waits up to this long are broker countdowns; longer ones (backoffs, documents not
    # yet downloadable, callback retries) live in Redis deadlines driven by the sweeper.
    countdown_max_seconds: float = Field(default=5.0, ge=0)
    # A driven booking whose step holds no live claim is driven again after this long
    # (a lost message, a killed worker); a live claim is re-checked as often.
    redrive_after_seconds: int = Field(default=25, ge=1)
    # A worker process proves it is alive by renewing a Redis key this often x3; a claim
    # whose owner's key lapsed is taken over without waiting for the claim's lease.
    worker_heartbeat_seconds: int = Field(default=10, ge=2)
    # awaiting_beneficiary: the merchant has this long to send beneficiary data, then
    # the booking ends in refund_required (alerted).
    beneficiary_wait_seconds: int = Field(default=3 * 24 * 3600, ge=60)
    # Above the longest countdown a task ever uses (countdown_max_seconds), so the broker
    # never redelivers a scheduled message early. Not how the fleet recovers from a
    # killed worker (claims and the sweeper are): a message it held comes back this late.
    visibility_timeout_seconds: int = Field(default=300, ge=1)
    # RedBeat lock time to live: the active beat renews it every loop; a standby beat takes
    # over at most this long (plus one loop) after the active one died.
    beat_lock_timeout_seconds: int = Field(default=30, ge=2)
    unacked_restore_interval_seconds: int = Field(default=60, ge=1)

    @field_validator(
        "stripe_webhook_secret",
        "payments_webhook_secret",
        "merchant_api_keys",
        "callback_allowed_hosts",
        "callback_allowed_networks",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("payments_webhook_secret")
    @classmethod
    def _whsec_list(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            whsec_key(secret.get_secret_value())
        return value

    @field_validator("merchant_api_keys")
    @classmethod
    def _merchant_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        owners: dict[str, str] = {}
        for entry in value:
            merchant, key = merchant_entry(entry.get_secret_value())
            if owners.setdefault(key, merchant) != merchant:
                raise ValueError("one key is listed for two merchants (the key is not shown)")
        return value

    @field_validator("callback_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            whsec_key(value.get_secret_value())
        return value

    @field_validator("stripe_webhook_secret")
    @classmethod
    def _stripe_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            raw = secret.get_secret_value()
            if not raw.isascii() or not raw.isprintable() or " " in raw:
                raise ValueError("an entry holds spaces or control characters (not shown)")
        return value

    @field_validator("callback_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an IP network (e.g. 10.1.0.0/16)") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url", "broker_url")
    @classmethod
    def _url_scheme(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        schemes: tuple[str, ...] = (
            "redis://", "rediss://", "unix://", "redis+socket://", "amqp://", "amqps://"
        )
        if info.field_name == "redis_url":
            # The state store may be a Redis Cluster (worker/redis_connect.py).
            schemes = (*schemes, "redis+cluster://", "rediss+cluster://")
        if not value.startswith(schemes):
            raise ValueError(f"must start with one of {', '.join(schemes)}")
        if is_cluster_url(value):
            parse_cluster_url(value)  # ValueError names what is malformed
        return value

    @model_validator(mode="after")
    def _callback_url_target(self) -> Settings:
        if self.callback_url is not None:
            from worker.booking.callback_transport import TargetRefusedError, parse_target

            try:
                parse_target(self.callback_url, self.callback_policy)
            except TargetRefusedError as error:
                raise ValueError(f"CALLBACK_URL: {error}") from None
        return self

    @property
    def callback_policy(self) -> CallbackPolicy:
        from worker.booking.callback_transport import TargetPolicy

        return TargetPolicy.build(
            self.callback_allow_http, self.callback_allowed_hosts, self.callback_allowed_networks
        )

    @field_validator("korus_base_url", "korus_token_url", "callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _cluster_needs_a_broker(self) -> Settings:
        if is_cluster_url(self.redis_url) and self.broker_url is None:
            raise ValueError(
                "BROKER_URL is required when REDIS_URL is a Redis Cluster: the Celery "
                "broker runs on one Redis server (redis://) or RabbitMQ (amqp://)"
            )
        return self

    @model_validator(mode="after")
    def _korus_auth(self) -> Settings:
        if self.korus_token is None:
            missing = [
                name
                for name, value in (
                    ("KORUS_CLIENT_ID", self.korus_client_id),
                    ("KORUS_CLIENT_SECRET", self.korus_client_secret),
                    ("KORUS_TOKEN_URL", self.korus_token_url),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    "set KORUS_TOKEN, or all of KORUS_CLIENT_ID, KORUS_CLIENT_SECRET and "
                    f"KORUS_TOKEN_URL (missing: {', '.join(missing)})"
                )
        return self

    @property
    def order_lease_seconds(self) -> float:
        """The longest an order call can be in flight: waiting for a token refresh, the
        token request, the call, and its one resend after a 401 (each connect + read)."""
        call = self.korus_connect_timeout + self.korus_read_timeout
        return self.korus_token_wait_seconds + 3 * call + self.order_lease_margin_seconds

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url


class SettingsError(SystemExit):
    """Raised at start when the environment is incomplete; the message names variables."""


def describe_validation_error(error: ValidationError) -> str:
    lines = ["invalid settings:"]
    for item in error.errors():
        location = "_".join(str(part) for part in item["loc"]).upper()
        variable = location or "settings"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required but not set"
        lines.append(f"  {variable}: {message}")
    return "\n".join(lines)


@functools.cache
def load_settings() -> Settings:
    """Read the environment once; on error exit with a message naming each variable."""
    try:
        return Settings()
    except ValidationError as error:
        message = describe_validation_error(error)
        print(message, file=sys.stderr)
        raise SettingsError(message) from None
