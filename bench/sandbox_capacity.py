"""sandbox_capacity: requests/s the Korus sandbox serves with the worker's booking mix
(offers, reservations/_bulk, orders/_bulk) and its CPU per request, so it is never
mistaken for the bottleneck of the other figures.

A thin wrapper over bench/sandbox_rate.py (its sandbox process and load threads). The
baseline, same run and same client threads: the same sandbox answering a static admin
route (`GET /_sandbox/faults`), i.e. what its HTTP server alone costs.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from bench import sandbox_rate
from bench.common import Figure, Options, command_for

NAME = "sandbox_capacity"


def static_rate(url: str, threads: int, seconds: float) -> float:
    count = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        session = requests.Session()
        session.trust_env = False
        done = 0
        while time.monotonic() < deadline:
            session.get(url + "/_sandbox/faults", timeout=10).raise_for_status()
            done += 1
        session.close()
        with lock:
            count[0] += done

    started = time.monotonic()
    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + 30)
    return count[0] / (time.monotonic() - started)


def measure(options: Options) -> list[Figure]:
    import sys

    seconds = options.size(8, 2)
    threads = 8
    process, url = sandbox_rate.start_sandbox(sys.executable, startup_timeout=30)
    try:
        token = requests.post(url + sandbox_rate.TOKEN_PATH, data={
            "grant_type": "client_credentials", "client_id": "sandbox",
            "client_secret": "sandbox"}, timeout=10).json()["access_token"]
        day_pass = requests.get(url + "/_sandbox/catalog", timeout=10).json()["Day Pass"]
        offers_path = day_pass["offer"].rsplit("/", 1)[0]
        baseline = static_rate(url, threads, seconds)
        bench = sandbox_rate.Bench(url, token, offers_path, day_pass)
        cpu_before = sandbox_rate.cpu_seconds(process.pid)
        elapsed = bench.run(threads, seconds, 1_000_000)
        cpu_after = sandbox_rate.cpu_seconds(process.pid)
    finally:
        process.terminate()
        process.wait(10)
    total = sum(len(v) for v in bench.latencies.values())
    details: dict[str, Any] = {"errors": sum(bench.errors.values()), "threads": threads}
    if cpu_before is not None and cpu_after is not None and total:
        per_request = (cpu_after - cpu_before) / total * 1000
        details["sandbox_cpu_ms_per_request"] = round(per_request, 3)
        details["requests_per_core_second"] = round(1000 / per_request)
    return [Figure(NAME, total / elapsed, "req/s", "same sandbox, static admin route",
                   baseline, "never the bottleneck (see details: CPU per request)",
                   command_for(NAME, options), "", details)]
