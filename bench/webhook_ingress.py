"""webhook_ingress: signed payment webhooks per second through gunicorn to the broker,
against the same gunicorn (deploy/gunicorn.conf.py, same workers and threads) answering a
static 200 (bench/static_app.py), with the same load, in the same run.

A thin wrapper: the load processes, the bookings and the broker count are
bench/webhook_rate.py's own functions. Targets: >= 1,500 req/s and p99 <= 25 ms.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections import Counter
from contextlib import ExitStack
from typing import Any

from bench import webhook_rate
from bench.common import ROOT, Figure, Options, command_for, private_redis
from worker.processes import Proc, free_port, service_env, wait_http

NAME = "webhook_ingress"
WEB_WORKERS = 2
WEB_THREADS = 8


def serve_and_load(app_path: str, redis_url: str, *, seconds: float, clients: int,
                   threads: int, max_requests: int, bookings: list[str]) -> dict[str, Any]:
    with ExitStack() as stack:
        port = free_port()
        env = service_env(redis_url, "http://127.0.0.1:9",
                          PAYMENTS_WEBHOOK_SECRET=webhook_rate.SECRET,
                          WEB_CONCURRENCY=str(WEB_WORKERS), WEB_THREADS=str(WEB_THREADS),
                          LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
        argv = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy/gunicorn.conf.py"),
                "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), app_path]
        web = Proc("web", argv, env).start()
        stack.callback(web.stop)
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        run = f"{app_path.split('.')[0]}{int(time.time() * 1000)}"
        url = f"http://127.0.0.1:{port}/webhooks/payments"
        # fork: the load starts at once (spawn re-imports for seconds on a busy machine)
        context = multiprocessing.get_context("fork")
        results: Any = context.Queue()
        deadline = time.time() + seconds
        per_client = max(1, max_requests // clients)
        processes = [
            context.Process(target=webhook_rate.load,
                            args=(url, run, c, threads, bookings, deadline, per_client, results))
            for c in range(clients)
        ]
        started = time.perf_counter()
        for process in processes:
            process.start()
        latencies: list[float] = []
        outcomes: Counter[str] = Counter()
        for _ in processes:
            part, counts = results.get(timeout=seconds + 60)
            latencies += part
            outcomes.update(counts)
        elapsed = time.perf_counter() - started
        for process in processes:
            process.join(10)
    total = len(latencies)
    return {
        "requests": total,
        "rate": total / elapsed if elapsed else 0.0,
        "p50_ms": webhook_rate.percentile(latencies, 0.5) * 1000,
        "p99_ms": webhook_rate.percentile(latencies, 0.99) * 1000,
        "outcomes": dict(outcomes), "seconds": elapsed,
        "run": run,
    }


def measure(options: Options) -> list[Figure]:
    seconds = options.size(10, 2)
    clients, threads = 2, 8
    max_requests = options.size(50_000, 5_000)
    with private_redis() as url:
        bookings = webhook_rate.create_bookings(url, options.size(200, 20))
        kwargs = {"seconds": seconds, "clients": clients, "threads": threads,
                  "max_requests": max_requests, "bookings": bookings}
        static = serve_and_load("bench.static_app:application", url, **kwargs)
        real = serve_and_load("worker.http.wsgi:application", url, **kwargs)
        on_broker = webhook_rate.count_messages(url, real["run"])
    command = command_for(NAME, options)
    enqueued = real["outcomes"].get("enqueued", 0)
    note = "" if on_broker == enqueued else f"MISMATCH: {on_broker} on broker, {enqueued} enqueued"
    shape = f"{WEB_WORKERS} gunicorn workers x {WEB_THREADS} threads, {clients}x{threads} clients"
    return [
        Figure(NAME, real["rate"], "req/s", f"same gunicorn, static 200 ({shape})",
               static["rate"], "value >= 1500 req/s", command, note,
               {"real": real, "static": static, "messages_on_broker": on_broker}),
        Figure(f"{NAME} p99", real["p99_ms"], "ms", "same gunicorn, static 200",
               static["p99_ms"], "value <= 25 ms", command),
    ]
