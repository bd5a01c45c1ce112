"""latency_under_load: payment webhook accepted -> booking completed, p50/p95/p99, with
the sandbox adding 100 ms to every Korus call, at 50 % and 90 % of the capacity measured
in the same run (a burst of bookings through the same workers).

The baseline is the Korus latency on that path, measured in the same run: the mean time
of the order call, the documents listing and the document URL call (from the workers'
own call statistics). Target: p99 at 50 % load <= that + 250 ms.
"""

from __future__ import annotations

from typing import Any

import redis

from bench.common import (
    Figure,
    Options,
    command_for,
    deployment,
    percentile,
    private_redis,
    wait_drained,
)
from bench.driver import Driver
from worker.korus.stats import KORUS_STATS

NAME = "latency_under_load"
LATENCY_MS = 100
WORKERS = 2
CONCURRENCY = 4
# Every Korus call of a booking but the reservation (and the token, fetched once) comes
# after the payment: the order, the documents listing, one URL per document.
BEFORE_PAYMENT = ("POST /v1/booking/reservations/_bulk",)


def path_latency_ms(url: str) -> tuple[float, dict[str, float]]:
    """The mean time of each after-payment call, summed (ms); and every mean (ms)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        stats = client.hgetall(KORUS_STATS)
    finally:
        client.close()
    means: dict[str, float] = {}
    for name, value in stats.items():
        endpoint, _, kind = name.partition("|")
        if kind == "sum":
            count = sum(int(v) for k, v in stats.items() if k.startswith(f"{endpoint}|count|"))
            if count:
                means[endpoint] = float(value) / count * 1000
    on_path = {e: m for e, m in means.items()
               if e not in BEFORE_PAYMENT and "openid-connect" not in e}
    return sum(on_path.values()), means


def measure(options: Options) -> list[Figure]:
    workers = options.size(WORKERS, 1)
    concurrency = options.size(CONCURRENCY, 2)
    burst = options.size(120, 12)
    seconds = options.size(20, 3)
    command = command_for(NAME, options)
    loads: dict[float, Any] = {}
    with private_redis() as url, deployment(
        redis_url=url, sandbox_args=["--fault", f"*:latency_ms={LATENCY_MS}"], workers=workers,
        concurrency=concurrency, label=NAME,
    ) as dep:
        from korus_sandbox.admin import SandboxAdmin

        driver = Driver(url, url, SandboxAdmin(dep.sandbox_url).catalog())
        try:
            driver.batch(max(4, concurrency), timeout=60)  # warm-up
            capacity = driver.batch(burst, timeout=180).rate()
            wait_drained(url)
            for share in (0.5, 0.9):
                rate = max(0.5, capacity * share)
                count = max(4, int(rate * seconds))
                run = driver.open_loop(count, rate=rate, timeout=seconds * 4 + 60)
                wait_drained(url)
                loads[share] = (rate, run)
        finally:
            driver.close()
        korus_ms, means = path_latency_ms(url)
    figures = []
    for share, (rate, run) in loads.items():
        latencies = [s * 1000 for s in run.latencies()]
        details = {"capacity_bookings_per_s": round(capacity, 2), "offered_rate": round(rate, 2),
                   "bookings": len(run.created), "completed": run.completed,
                   "korus_mean_ms_by_endpoint": {k: round(v, 1) for k, v in means.items()},
                   "workers": workers, "concurrency": concurrency}
        note = "" if run.completed == len(run.created) else \
            f"{len(run.created) - run.completed} not completed in time"
        for q in (0.5, 0.95, 0.99):
            target = f"value <= {korus_ms + 250:.0f} ms (baseline + 250)" \
                if (share, q) == (0.5, 0.99) else "-"
            figures.append(Figure(
                f"{NAME} p{int(q * 100)} @{int(share * 100)}%", percentile(latencies, q), "ms",
                "Korus latency on the path (order + documents + URL)", korus_ms, target,
                command, note if q == 0.99 else "", details if q == 0.99 else {}))
    return figures
