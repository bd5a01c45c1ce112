"""io_pools: bookings/s of ONE worker process with 100 ms per Korus call, for the prefork,
threads and gevent pools at several concurrencies (one deployment, one worker at a time).

The baseline is the Procfile's former default, prefork with 8 children, measured in the
same run. By Little's law a pool of N slots completes at most N / W tasks per second
when each task waits W seconds on Korus; the table shows where CPU or the pool's own
overhead, not the slots, becomes the bound. See deploy/README.md for the choice.
"""

from __future__ import annotations

import importlib.util

from bench.common import (
    Figure,
    Options,
    command_for,
    deployment,
    private_redis,
    start_workers,
    stop_procs,
    wait_drained,
)
from bench.driver import Driver

NAME = "io_pools"
LATENCY_MS = 100
BASELINE = ("prefork", 8)


def configurations(smoke: bool) -> list[tuple[str, int]]:
    if smoke:
        configs = [("prefork", 2), ("threads", 4)]
    else:
        configs = [("prefork", 4), ("prefork", 8), ("prefork", 16),
                   ("threads", 8), ("threads", 16), ("threads", 32)]
    if not smoke and importlib.util.find_spec("gevent") is not None:
        configs += [("gevent", 16), ("gevent", 32), ("gevent", 64)]
    return configs


def measure(options: Options) -> list[Figure]:
    configs = configurations(options.smoke)
    baseline = configs[0] if options.smoke else BASELINE
    rates: dict[tuple[str, int], float] = {}
    notes: dict[tuple[str, int], str] = {}
    with private_redis() as url, deployment(
        redis_url=url, sandbox_args=["--fault", f"*:latency_ms={LATENCY_MS}"], label=NAME,
    ) as dep:
        from korus_sandbox.admin import SandboxAdmin

        catalog = SandboxAdmin(dep.sandbox_url).catalog()
        for pool, concurrency in configs:
            procs = start_workers(dep, 1, pool=pool, concurrency=concurrency, app="worker",
                                  label=f"{NAME}-{pool}{concurrency}")
            driver = Driver(url, url, catalog)
            try:
                driver.batch(min(concurrency, 8), timeout=60)  # warm-up
                count = options.size(max(40, concurrency * 4), 8)
                run = driver.batch(count, timeout=options.size(120, 40))
            finally:
                driver.close()
            wait_drained(url, timeout=30)
            stop_procs(dep, procs)
            rates[(pool, concurrency)] = run.rate()
            if run.completed < count:
                notes[(pool, concurrency)] = f"{count - run.completed} not completed in time"
    command = command_for(NAME, options)
    base = rates[baseline]
    return [
        Figure(f"{NAME} {pool} x{concurrency}", rate, "bookings/s/process",
               f"{baseline[0]} x{baseline[1]}, same run", base, "choose the best (Little's law)",
               command, notes.get((pool, concurrency), ""))
        for (pool, concurrency), rate in rates.items()
    ]
