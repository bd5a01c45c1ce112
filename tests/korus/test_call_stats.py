"""Korus call statistics: every call counted per endpoint template and outcome, in Redis."""

from __future__ import annotations

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
        client = KorusClient(sandbox.url, tokens, observer=RedisCallStats(redis_client))
        client.list_catalogs()
        with pytest.raises(KorusNotFoundError):
            client.get_order("01941f29-7c02-7424-a0b8-b998f728b4fa")
        admin.set_fault("GET /v1/ticketing/catalogs", next=["error"])
        with pytest.raises(KorusTransientError):
            client.list_catalogs()

    stats: dict[str, Any] = redis_client.hgetall(KORUS_STATS)
    assert stats["GET /v1/ticketing/catalogs|count|200"] == "1"
    assert stats["GET /v1/ticketing/catalogs|count|503"] == "1"
    assert stats["GET /v1/booking/orders/{id}|count|404"] == "1"
    buckets = {k: v for k, v in stats.items() if k.startswith("GET /v1/ticketing/catalogs|bucket")}
    assert sum(int(v) for v in buckets.values()) == 2
    assert float(stats["GET /v1/ticketing/catalogs|sum"]) > 0
