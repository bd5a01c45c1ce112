"""Prometheus metrics of the HTTP front: requests, latency, webhook outcomes, bookings.

Under gunicorn (several worker processes) prometheus-client runs in multiprocess mode:
deploy/gunicorn.conf.py sets `PROMETHEUS_MULTIPROC_DIR` before any worker starts, the
library then keeps counters in files there, and a scrape of any worker sums them all.
Bookings by state are not counted here: they are read at scrape time from the store's
per-state indexes (ZCARD), so every process reports the same truth. Those indexes may
hold a stale entry for a moment (store.py writes indexes ahead of the record), so the
figures are approximate by a handful at most.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator

import falcon
import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from worker.booking import keys
from worker.booking.states import State
from worker.booking.sweep import SWEEP_STATS
from worker.korus.stats import BUCKETS as KORUS_BUCKETS
from worker.korus.stats import KORUS_STATS

log = logging.getLogger("booking.http")

NAMESPACE = "booking_worker"
# Any token is a valid method; only these become label values (bounded cardinality).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def multiprocess_mode() -> bool:
    """True when prometheus-client chose file-backed values (PROMETHEUS_MULTIPROC_DIR)."""
    return values.ValueClass is not values.MutexValue


class BookingStateCollector(Collector):
    """`booking_worker_bookings{state=...}`: ZCARD of each per-state index at scrape time."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        counts = GaugeMetricFamily(
            f"{NAMESPACE}_bookings", "Bookings per state (store indexes)", labels=["state"]
        )
        up = GaugeMetricFamily(
            f"{NAMESPACE}_bookings_scrape_ok", "1 when the booking counts could be read"
        )
        sweeps = CounterMetricFamily(
            f"{NAMESPACE}_sweep_actions",
            "Sweeper actions since the Redis counters began (`runs` counts sweeps)",
            labels=["action"],
        )
        return counts, up, sweeps

    def describe(self) -> Iterator[Metric]:
        """Names only: registering the collector must not touch Redis."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        family, up, sweeps = self._families()
        try:
            pipe = self.client.pipeline(transaction=False)
            for state in State:
                pipe.zcard(keys.by_state(state.value))
            pipe.hgetall(SWEEP_STATS)
            pipe.hgetall(KORUS_STATS)
            *counts, sweep_stats, korus_stats = pipe.execute()
        except redis.RedisError as error:
            log.warning("bookings by state unavailable: %s", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        for state, count in zip(State, counts, strict=True):
            family.add_metric([state.value], float(count))
        for action, value in sorted(sweep_stats.items()):
            name = action.decode() if isinstance(action, bytes) else str(action)
            if name not in ("last_run_at", "last_ms"):
                sweeps.add_metric([name], float(value))
        up.add_metric([], 1)
        yield family
        yield up
        yield sweeps
        yield from korus_families(korus_stats)


def korus_families(raw: dict[str, str]) -> Iterator[Metric]:
    """Korus calls of the whole fleet (worker.korus.stats): outcomes and latency."""
    calls = CounterMetricFamily(
        f"{NAMESPACE}_korus_calls",
        "Korus calls by endpoint template and outcome (HTTP status or error class)",
        labels=["endpoint", "outcome"],
    )
    sums: dict[str, float] = {}
    buckets: dict[str, dict[str, float]] = {}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        parts = name.split("|")
        endpoint, kind = parts[0], parts[1] if len(parts) > 1 else ""
        label = parts[2] if len(parts) > 2 else ""
        if kind == "count":
            calls.add_metric([endpoint, label], float(value))
        elif kind == "sum":
            sums[endpoint] = float(value)
        elif kind == "bucket":
            buckets.setdefault(endpoint, {})[label] = float(value)
    yield calls
    latency = HistogramMetricFamily(
        f"{NAMESPACE}_korus_call_seconds", "Korus call latency by endpoint", labels=["endpoint"]
    )
    for endpoint, counts in sorted(buckets.items()):
        cumulative, rows = 0.0, []
        for bound in [*(repr(b) for b in KORUS_BUCKETS), "+Inf"]:
            cumulative += counts.get(bound, 0.0)
            rows.append((bound, cumulative))
        latency.add_metric([endpoint], rows, sum_value=sums.get(endpoint, 0.0))
    yield latency


class Metrics:
    """The metric objects of one app, on a registry of its own (apps can coexist)."""

    def __init__(self, client: redis.Redis) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request to response, by method and route template",
            ["method", "route"],
            namespace=NAMESPACE,
            registry=self.registry,
            # Webhooks answer in milliseconds; a booking POST with `Prefer: wait` up to 10 s.
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
        )
        self.webhooks = Counter(
            "webhook_events",
            "Webhook deliveries by provider and outcome",
            ["provider", "outcome"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.bookings = BookingStateCollector(client)
        if not multiprocess_mode():
            self.registry.register(self.bookings)

    def exposition(self) -> bytes:
        if multiprocess_mode():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(self.bookings)
            return generate_latest(registry)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every response (including errors and 404s) by route template, not raw path."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        resource: object,
        req_succeeded: bool,
    ) -> None:
        route = req.uri_template or "unmatched"
        method = req.method if req.method in _METHODS else "OTHER"
        started: float | None = req.context.get("started")
        elapsed = time.perf_counter() - started if started is not None else 0.0
        self.metrics.latency.labels(method, route).observe(elapsed)
        self.metrics.requests.labels(method, route, str(resp.status_code)).inc()


class MetricsResource:
    """`GET /metrics` on the public port: Prometheus text for `Authorization: Bearer
    <METRICS_TOKEN>`, 404 otherwise (also when no token is configured: then the metrics
    live on METRICS_PORT, worker.http.metrics_listener)."""

    def __init__(self, metrics: Metrics, token: str | None = None) -> None:
        self.metrics = metrics
        self.token = token.encode() if token else None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        presented = (req.get_header("Authorization") or "").encode("utf-8", "replace")
        expected = b"Bearer " + self.token if self.token else None
        if expected is None or not hmac.compare_digest(presented, expected):
            raise falcon.HTTPNotFound()
        resp.data = self.metrics.exposition()
        resp.content_type = CONTENT_TYPE_LATEST
