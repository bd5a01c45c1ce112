"""Korus call statistics: every call counted per endpoint template and outcome, in Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.server import SandboxConfig, start_sandbox
from worker.korus.auth import SharedTokenProvider
from worker.korus.client import KorusClient
from worker.korus.errors import KorusNotFoundError, KorusTransientError
from worker.korus.stats import KORUS_STATS, RedisCallStats, bucket_of, endpoint_template


def test_endpoint_templates_hide_ids_and_queries() -> None:
    path = "/v1/booking/orders/01941f29-7c02-7424-a0b8-b998f728b4fa/documents/abc123def456ghi789"
    assert endpoint_template("PATCH", path) == "PATCH /v1/booking/orders/{id}/documents/{id}"
    assert endpoint_template("GET", "/v1/booking/orders?external_reference=bk_1") == (
        "GET /v1/booking/orders"
    )
    assert endpoint_template("POST", "/v1/booking/orders/_bulk") == "POST /v1/booking/orders/_bulk"
    assert bucket_of(0.01) == "0.05" and bucket_of(99) == "+Inf"


def test_calls_are_counted_by_outcome_with_latency(redis_client: redis.Redis) -> None:
    with start_sandbox(SandboxConfig(port=0)) as sandbox:
        admin = SandboxAdmin(sandbox.url)
        tokens = SharedTokenProvider(redis_client, sandbox.token_url, "sandbox", "sandbox")
        observer = RedisCallStats(redis_client)
        client = KorusClient(sandbox.url, tokens, observer=observer)
        client.list_catalogs()
        with pytest.raises(KorusNotFoundError):
            client.get_order("01941f29-7c02-7424-a0b8-b998f728b4fa")
        admin.set_fault("GET /v1/ticketing/catalogs", next=["error"])
        with pytest.raises(KorusTransientError):
            client.list_catalogs()
    observer.flush()  # calls within a second of each other are written together

    stats: dict[str, Any] = redis_client.hgetall(KORUS_STATS)
    assert stats["GET /v1/ticketing/catalogs|count|200"] == "1"
    assert stats["GET /v1/ticketing/catalogs|count|503"] == "1"
    assert stats["GET /v1/booking/orders/{id}|count|404"] == "1"
    buckets = {k: v for k, v in stats.items() if k.startswith("GET /v1/ticketing/catalogs|bucket")}
    assert sum(int(v) for v in buckets.values()) == 2
    assert float(stats["GET /v1/ticketing/catalogs|sum"]) > 0


def test_calls_are_written_together_once_a_second_and_the_first_at_once(
    redis_client: redis.Redis,
) -> None:
    observer = RedisCallStats(redis_client, flush_seconds=3600)
    observer("GET", "/v1/ticketing/catalogs", "200", 0.01)  # after a quiet period: at once
    assert redis_client.hget(KORUS_STATS, "GET /v1/ticketing/catalogs|count|200") == "1"
    for _ in range(5):
        observer("GET", "/v1/ticketing/catalogs", "200", 0.01)
    assert redis_client.hget(KORUS_STATS, "GET /v1/ticketing/catalogs|count|200") == "1"
    observer.flush()  # what the timer does a flush period later
    stats: dict[str, Any] = redis_client.hgetall(KORUS_STATS)
    assert stats["GET /v1/ticketing/catalogs|count|200"] == "6"
    assert stats["GET /v1/ticketing/catalogs|bucket|0.05"] == "6"
    assert float(stats["GET /v1/ticketing/catalogs|sum"]) == pytest.approx(0.06)


def test_a_timer_writes_what_is_left_after_the_last_call(redis_client: redis.Redis) -> None:
    observer = RedisCallStats(redis_client, flush_seconds=0.1)
    observer("POST", "/v1/booking/orders/_bulk", "201", 0.2)
    observer("POST", "/v1/booking/orders/_bulk", "201", 0.2)  # pending: within the period
    field = "POST /v1/booking/orders/_bulk|count|201"
    deadline = time.monotonic() + 10
    while redis_client.hget(KORUS_STATS, field) != "2" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert redis_client.hget(KORUS_STATS, field) == "2"
