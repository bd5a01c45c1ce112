"""Where a Celery worker's CPU goes per booking: the real app against the raw chain.

    .venv/bin/python bench/worker_profile.py                  # 100 bookings each
    .venv/bin/python bench/worker_profile.py --bookings 200 --top 30

pipeline_throughput compares the CPU per booking of the real workers with a raw Celery
chain of the same messages (bench/raw_app.py). This runs each app in ONE worker process
(`-P solo`) under cProfile (CPU time), drives the same bookings through it, and prints
CPU ms per booking with the functions that take it, so the gap can be read by layer:
Celery's own handling, the Korus HTTP client, the Redis client, the record's models.
Profiling inflates every figure; the ratios between layers are what it shows.
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    LOGS,
    cpu_seconds,
    deployment,
    private_redis,
    process_tree,
    wait_drained,
)
from worker.processes import ALL_QUEUES, Proc  # noqa: E402

# Where a function's time is counted, by the file it is in (first match wins).
LAYERS = (
    ("korus HTTP (requests, urllib3, http.client)", ("requests/", "urllib3/", "http/client")),
    ("redis client", ("redis/",)),
    ("pydantic", ("pydantic",)),
    ("celery / kombu / billiard", ("celery/", "kombu/", "billiard/", "vine/", "amqp/")),
    ("logging", ("logging/",)),
    ("json", ("json/",)),
    ("worker (this project)", ("worker/", "tasks/")),
)


# The worker under a CPU-time profiler (waits on sockets cost nothing), written on exit.
# `--cpu-only`: the same worker without a profiler (its CPU read from /proc).
_LAUNCH = """
import cProfile, sys, time
from celery.__main__ import main
out = sys.argv.pop(1)
if not out:
    main()
    sys.exit()
profiler = cProfile.Profile(time.process_time)
profiler.enable()
try:
    main()
finally:
    profiler.disable()
    profiler.dump_stats(out)
"""


def profiled_worker(env: dict[str, str], app: str, out: str) -> Proc:
    """A solo worker of `app`; profiled into `out` unless it is empty."""
    argv = [sys.executable, "-c", _LAUNCH, out, "-A", app, "worker",
            "-Q", ALL_QUEUES, "-P", "solo", "-n", f"profile-{os.getpid()}@%h",
            "--prefetch-multiplier", "1", "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    return Proc(f"profile-{app}", argv, env, LOGS / f"worker-profile-{app}.log")


# Entry points whose cumulative CPU tells the layers apart (functions called within are
# counted in them): a message's handling by Celery, our task bodies and their parts.
ENTRY_POINTS = (
    ("a message handled by Celery (the task body included)",
     r"celery/worker/strategy.py:\d+\(task_message_handler\)"),
    ("  the booking steps (tasks.policy.run_step)", r"tasks/policy.py:\d+\(run_step\)"),
    ("  the merchant callbacks (callbacks.deliver)", r"booking/callbacks.py:\d+\(deliver\)"),
    ("  the raw chain's task bodies", r"bench/raw_app.py:\d+\("),
    ("    Korus HTTP calls (korus.transport.request)", r"korus/transport.py:\d+\(request\)"),
    ("    store reads and writes (BookingStore.update/load)",
     r"booking/store.py:\d+\((update|load)\)"),
    ("    messages sent (Celery send_task)", r"celery/app/base.py:\d+\(send_task\)"),
)


def entry_points(stats: pstats.Stats) -> dict[str, float]:
    spent = dict.fromkeys([name for name, _ in ENTRY_POINTS], 0.0)
    for (filename, line, func), (_, _, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{line}({func})"
        for name, pattern in ENTRY_POINTS:
            if re.search(pattern, where):
                spent[name] += cumtime
    return spent


def layers(stats: pstats.Stats) -> dict[str, float]:
    spent = dict.fromkeys([name for name, _ in LAYERS] + ["other"], 0.0)
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        name = next((n for n, marks in LAYERS if any(m in filename for m in marks)), "other")
        spent[name] += tottime
    return spent


def run(app: str, count: int, top: int, keep: str | None, cpu_only: bool = False) -> None:
    from bench.driver import Driver
    from bench.pipeline_throughput import raw_chain
    from korus_sandbox.admin import SandboxAdmin

    workdir = tempfile.mkdtemp(prefix="worker-profile-")
    out = "" if cpu_only else os.path.join(workdir, f"{app}.prof")
    with private_redis() as url, deployment(redis_url=url, label="worker-profile") as dep:
        proc = profiled_worker(dep.env, app, out).start()
        pids = process_tree(proc.pid)
        try:
            if app == "worker":
                driver = Driver(url, url, SandboxAdmin(dep.sandbox_url).catalog())
                try:
                    driver.batch(4, timeout=60)  # warm-up (imports, token)
                    wait_drained(url)
                    cpu = cpu_seconds(pids)
                    started = time.monotonic()
                    done = driver.batch(count, timeout=300).completed
                finally:
                    driver.close()
            else:
                raw_chain(url, 4, 60)
                wait_drained(url)
                cpu = cpu_seconds(pids)
                started = time.monotonic()
                raw_chain(url, count, 300)
                done = count
            wait_drained(url)
            seconds = time.monotonic() - started
            cpu = cpu_seconds(pids) - cpu
        finally:
            proc.stop(timeout=30)
    if cpu_only:
        print(f"== {app}: {done}/{count} bookings in {seconds:.1f}s; worker CPU "
              f"{cpu / count * 1000:.2f} ms per booking (no profiler)")
        os.rmdir(workdir)
        return
    stats = pstats.Stats(out)
    total = sum(v for v in layers(stats).values())
    print(f"\n== {app}: {done}/{count} bookings in {seconds:.1f}s; profiled CPU "
          f"{total / count * 1000:.1f} ms per booking (all the worker did, warm-up included)")
    print("  by the file a function is in (its own time):")
    for name, seconds_in in sorted(layers(stats).items(), key=lambda kv: -kv[1]):
        print(f"   {seconds_in / count * 1000:7.2f} ms  {seconds_in / total:5.1%}  {name}")
    print("  by entry point (cumulative):")
    for name, seconds_in in entry_points(stats).items():
        if seconds_in:
            print(f"   {seconds_in / count * 1000:7.2f} ms  {name}")
    stats.sort_stats("tottime").print_stats(top)
    if keep:
        os.makedirs(keep, exist_ok=True)
        os.replace(out, os.path.join(keep, f"{app}.prof"))
    else:
        os.unlink(out)
    os.rmdir(workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=100)
    parser.add_argument("--top", type=int, default=20, help="functions listed per app")
    parser.add_argument("--only", choices=["worker", "bench.raw_app"], default=None)
    parser.add_argument("--cpu-only", action="store_true",
                        help="no profiler: the solo worker's CPU per booking only")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="keep the profiles here (<app>.prof) instead of deleting them")
    args = parser.parse_args()
    from bench.__main__ import _defaults

    _defaults()  # settings the driver's imports need (each figure passes its own URLs)
    for app in ([args.only] if args.only else ["bench.raw_app", "worker"]):
        run(app, args.bookings, args.top, args.keep, args.cpu_only)


if __name__ == "__main__":
    main()
