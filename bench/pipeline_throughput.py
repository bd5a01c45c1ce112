"""pipeline_throughput: bookings/s end to end against a raw Celery chain, same run.

create -> reserve -> payment event -> order -> documents -> completed, with the sandbox
adding no latency and documents downloadable at once (Day Pass, one ticket). The
baseline (bench/raw_app.py) sends the same 6 messages per booking through the same
broker, queues, pool and concurrency, each task doing nothing. Both run on one private
redis-server (booking state and broker, as in a default deployment); the rounds
alternate baseline/real and the best of each is kept (other load on the machine only
ever slows a round down). Target: ratio >= 0.70.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from bench.common import (
    CpuMeter,
    Figure,
    Options,
    command_for,
    deployment,
    private_redis,
    process_tree,
    redis_pid,
    start_workers,
    stop_procs,
    wait_drained,
)
from bench.driver import Driver

NAME = "pipeline_throughput"
WORKERS = 2
CONCURRENCY = 4


def raw_chain(url: str, count: int, timeout: float) -> float:
    """Chains per second of `count` raw chains sent at once."""
    from bench.driver import celery_app

    app = celery_app(url, "bench-raw-driver")
    client = redis.Redis.from_url(url)
    try:
        client.set("raw:done", 0)
        started = time.time()
        for n in range(count):
            app.send_task("raw.reserve", args=[f"raw{n:08d}"], queue="bookings", priority=5)
        deadline = time.monotonic() + timeout
        done = 0
        while time.monotonic() < deadline:
            done = int(client.get("raw:done") or 0)
            if done >= count:
                break
            time.sleep(0.01)
        return done / max(1e-9, time.time() - started)
    finally:
        client.close()


def cpu_meter(dep: Any, workers: list[Any], url: str) -> CpuMeter:
    pids: set[int] = set()
    for proc in workers:
        pids |= process_tree(proc.pid)
    sandbox = {p.pid for p in dep.procs if p.name == "sandbox"}
    return CpuMeter({"workers": pids, "sandbox": sandbox, "redis": {redis_pid(url)}})


def per_booking(spent: dict[str, float], count: int) -> dict[str, float]:
    out = {name: seconds / count * 1000 for name, seconds in spent.items()}
    out["total"] = sum(out.values())
    return out


def best(samples: list[dict[str, float]]) -> dict[str, float]:
    return min(samples, key=lambda s: s["total"])


def measure(options: Options) -> list[Figure]:
    count = options.size(300, 20)
    rounds = options.size(2, 1)
    workers = options.size(WORKERS, 1)
    concurrency = options.size(CONCURRENCY, 2)
    timeout = options.size(120, 60)
    raw_rates: list[float] = []
    raw_cpu: list[dict[str, float]] = []
    real_cpu: list[dict[str, float]] = []
    real_rates: list[float] = []
    incomplete = 0
    with private_redis() as url, deployment(redis_url=url, label=NAME) as dep:
        from korus_sandbox.admin import SandboxAdmin

        catalog = SandboxAdmin(dep.sandbox_url).catalog()
        for _ in range(rounds):
            procs = start_workers(dep, workers, pool="prefork", concurrency=concurrency,
                                  app="bench.raw_app", label=f"{NAME}-raw")
            raw_chain(url, 8, 60)  # warm-up: workers up and connected
            wait_drained(url)
            meter = cpu_meter(dep, procs, url)
            meter.start()
            raw_rates.append(raw_chain(url, count, timeout))
            wait_drained(url)  # the trailing notify messages, before other workers start
            raw_cpu.append(per_booking(meter.stop(), count))
            stop_procs(dep, procs)

            procs = start_workers(dep, workers, pool="prefork", concurrency=concurrency,
                                  app="worker", label=f"{NAME}-real")
            driver = Driver(url, url, catalog)
            try:
                driver.batch(8, timeout=60)  # warm-up: workers up, Korus token fetched
                wait_drained(url)
                meter = cpu_meter(dep, procs, url)
                meter.start()
                run = driver.batch(count, timeout=timeout)
                wait_drained(url)
                real_cpu.append(per_booking(meter.stop(), count))
            finally:
                driver.close()
            stop_procs(dep, procs)
            real_rates.append(run.rate())
            incomplete += count - run.completed
    best_raw, best_real = max(raw_rates), max(real_rates)
    details: dict[str, Any] = {
        "bookings_per_round": count, "rounds": rounds, "workers": workers,
        "concurrency": concurrency, "pool": "prefork",
        "raw_rates": [round(r, 1) for r in raw_rates],
        "real_rates": [round(r, 1) for r in real_rates],
        "cpu_ms_per_booking_real": {k: round(v, 2) for k, v in best(real_cpu).items()},
        "cpu_ms_per_booking_raw": {k: round(v, 2) for k, v in best(raw_cpu).items()},
    }
    note = f"{incomplete} booking(s) not completed in time" if incomplete else ""
    command = command_for(NAME, options)
    real, raw = best(real_cpu), best(raw_cpu)
    return [
        Figure(NAME, best_real, "bookings/s",
               f"raw Celery chain, 6 no-op messages ({workers}x{concurrency} prefork)",
               best_raw, "ratio >= 0.70", command, note, details),
        # CPU per booking of every process (workers, sandbox, Redis, this driver as the
        # web front): on a shared machine, a steadier figure than the rate. Inverted so
        # that, like the rate, a ratio >= 0.70 is the target.
        Figure(f"{NAME} bookings per CPU-second", 1000 / real["total"], "bookings/cpu-s",
               "raw Celery chain, same run", 1000 / raw["total"], "ratio >= 0.70", command,
               details={"real_workers_ms": round(real["workers"], 2),
                        "raw_workers_ms": round(raw["workers"], 2)}),
    ]
