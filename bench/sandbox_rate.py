"""How many requests per second the Korus sandbox sustains (it must never be the bottleneck).

Starts the sandbox in a SUBPROCESS (`python -m korus_sandbox --port 0`, the same
interpreter as this script), then hammers it from this process with N threads, each
holding a `requests.Session` (keep-alive) and repeating the booking mix the worker
produces: GET the catalog's offers, POST reservations/_bulk (Day Pass, 1 ticket), POST
orders/_bulk on that reservation. Bounded by time AND by request count.

    .venv/bin/python bench/sandbox_rate.py --seconds 10 --threads 8

Prints requests/s and p50/p99 latency, overall and per endpoint, and a JSON summary line.
Every request is checked: an unexpected status counts as an error (and is reported).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import requests

TOKEN_PATH = "/realms/korusticket/protocol/openid-connect/token"
CUSTOMER = {"firstname": "Bench", "lastname": "Mark", "email": "bench@example.com"}
JSON_LD = "application/ld+json"


def start_sandbox(python: str, startup_timeout: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [python, "-m", "korus_sandbox", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=startup_timeout)
    if not lines or not lines[0].startswith("http://"):
        process.kill()
        raise SystemExit(f"the sandbox did not start within {startup_timeout}s")
    return process, lines[0].strip()


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process (Linux /proc), None where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


class Bench:
    def __init__(self, url: str, token: str, offers_path: str, day_pass: dict[str, Any]):
        self.url = url
        self.token = token
        self.offers_path = offers_path
        self.day_pass = day_pass
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.lock = threading.Lock()
        self.issued = itertools.count()

    def run(self, threads: int, seconds: float, max_requests: int) -> float:
        deadline = time.monotonic() + seconds
        workers = [
            threading.Thread(target=self._loop, args=(deadline, max_requests, n))
            for n in range(threads)
        ]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=seconds + 60)
        return time.monotonic() - started

    def _loop(self, deadline: float, max_requests: int, number: int) -> None:
        session = requests.Session()
        # No proxy/netrc lookups from the environment on every call: they cost more client
        # CPU than the sandbox spends answering (measured: ~+25 % client throughput).
        session.trust_env = False
        session.headers.update({"Authorization": f"Bearer {self.token}", "Accept": JSON_LD})
        local: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        samples: list[str] = []
        reservation_body = {
            "items": [
                {
                    "offer": self.day_pass["offer"],
                    "quantity": 1,
                    "ticketSessions": [{"ticket": self.day_pass["tickets"][0]}],
                }
            ]
        }

        def call(kind: str, expected: int, method: str, path: str, body: Any = None) -> Any:
            if time.monotonic() >= deadline or next(self.issued) >= max_requests:
                raise StopIteration
            started = time.perf_counter()
            response = session.request(
                method,
                self.url + path,
                json=body,
                timeout=(3, 30),
                headers={"Content-Type": JSON_LD} if body is not None else None,
            )
            local[kind].append(time.perf_counter() - started)
            if response.status_code != expected:
                errors[kind] += 1
                if len(samples) < 3:
                    samples.append(f"{kind}: {response.status_code} {response.text[:200]}")
                return None
            return response.json()

        try:
            for cycle in itertools.count():
                call("GET offers", 200, "GET", self.offers_path)
                held = call(
                    "POST reservations/_bulk",
                    201,
                    "POST",
                    "/v1/booking/reservations/_bulk",
                    reservation_body,
                )
                if held is None or not held["reservations"]:
                    continue
                order = {
                    "reservations": [held["reservations"][0]["@id"]],
                    "customer": CUSTOMER,
                    "externalReference": f"BENCH-{number}-{cycle}",
                }
                call("POST orders/_bulk", 200, "POST", "/v1/booking/orders/_bulk", order)
        except StopIteration:
            pass
        finally:
            session.close()
        with self.lock:
            for kind, values in local.items():
                self.latencies[kind].extend(values)
            for kind, count in errors.items():
                self.errors[kind] += count
            self.error_samples.extend(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="run time bound")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="count bound")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the sandbox")
    args = parser.parse_args()

    process, url = start_sandbox(args.python, startup_timeout=30)
    try:
        token = requests.post(
            url + TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_id": "sandbox",
                "client_secret": "sandbox",
            },
            timeout=10,
        ).json()["access_token"]
        catalog = requests.get(url + "/_sandbox/catalog", timeout=10).json()
        day_pass = catalog["Day Pass"]
        offers_path = day_pass["offer"].rsplit("/", 1)[0]
        bench = Bench(url, token, offers_path, day_pass)
        cpu_before = cpu_seconds(process.pid)
        elapsed = bench.run(args.threads, args.seconds, args.max_requests)
        cpu_after = cpu_seconds(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

    every = sorted(v for values in bench.latencies.values() for v in values)
    total = len(every)
    rate = total / elapsed if elapsed else 0.0
    print(f"sandbox {url}: {total} requests in {elapsed:.2f}s with {args.threads} threads")
    print(
        f"  {rate:,.0f} requests/s   p50 {percentile(every, 0.5) * 1000:.2f} ms   "
        f"p99 {percentile(every, 0.99) * 1000:.2f} ms"
    )
    summary: dict[str, Any] = {
        "requests": total,
        "seconds": round(elapsed, 3),
        "threads": args.threads,
        "requests_per_second": round(rate, 1),
        "p50_ms": round(percentile(every, 0.5) * 1000, 3),
        "p99_ms": round(percentile(every, 0.99) * 1000, 3),
        "errors": sum(bench.errors.values()),
        "endpoints": {},
    }
    if cpu_before is not None and cpu_after is not None and total:
        # The client (requests, one GIL) usually saturates first; the sandbox's own CPU
        # time per request tells how far it is from being the bottleneck.
        busy = cpu_after - cpu_before
        per_request_ms = busy / total * 1000
        print(
            f"  sandbox process CPU: {busy:.2f}s ({busy / elapsed:.0%} of one core), "
            f"{per_request_ms:.3f} ms per request -> about "
            f"{1000 / per_request_ms:,.0f} requests/s per core it could serve"
        )
        summary["sandbox_cpu_seconds"] = round(busy, 3)
        summary["sandbox_cpu_ms_per_request"] = round(per_request_ms, 4)
    for kind, values in sorted(bench.latencies.items()):
        values.sort()
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        print(
            f"  {kind:<24} {len(values):>7} calls  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
            f"  mean {statistics.fmean(values) * 1000:7.2f} ms  errors {bench.errors[kind]}"
        )
        summary["endpoints"][kind] = {
            "calls": len(values),
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
            "errors": bench.errors[kind],
        }
    for sample in bench.error_samples:
        print(f"  error sample: {sample}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
