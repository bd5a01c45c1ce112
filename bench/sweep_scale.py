"""sweep_scale: ms per sweep with 1,000 due, and Redis bytes per open booking, at 10k and
100k open bookings (and 1M with --large), each size on a fresh private redis-server.

The measuring code is bench/sweep_cost.py's `run` (fill as the store writes, median of
timed sweeps, INFO used_memory before/after the fill). Baselines from the same run: the
sweep time at the smallest size (target: the largest within 2x of it) and the size of the
record's JSON itself (target: at most 2 KiB per open booking in Redis).
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.common import Figure, Options, command_for, private_redis

NAME = "sweep_scale"


def one_size(size: int, due: int, repeats: int) -> dict[str, Any]:
    from bench import sweep_cost

    with private_redis() as url:
        args = argparse.Namespace(redis_url=url, flush=True, bookings=size, due=due,
                                  repeats=repeats, time_limit=900.0)
        return sweep_cost.run(args)


def record_json_bytes() -> int:
    from bench.sweep_cost import open_booking
    from worker.booking.deadlines import DeadlinePolicy

    booking, _ = open_booking(1, 3600.0, DeadlinePolicy())
    return len(booking.to_json().encode())


def label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def measure(options: Options) -> list[Figure]:
    sizes = [2_000, 5_000] if options.smoke else [10_000, 100_000]
    if options.large:
        sizes.append(1_000_000)
    due = options.size(1000, 100)
    repeats = options.size(3, 1)
    reports = {size: one_size(size, due, repeats) for size in sizes}
    command = command_for(NAME, options)
    smallest = reports[sizes[0]]
    figures = []
    for size in sizes[1:]:
        report = reports[size]
        # The fastest of the repeats: other load on the machine only ever adds time.
        figures.append(Figure(
            f"{NAME} sweep ms @{label(size)}", min(report["due_sweep_ms_runs"]), "ms/sweep",
            f"same sweep ({due} due) at {label(sizes[0])} open",
            min(smallest["due_sweep_ms_runs"]), "ratio <= 2", command, details=report))
    json_bytes = record_json_bytes()
    for size in sizes:
        figures.append(Figure(
            f"{NAME} bytes/open booking @{label(size)}",
            reports[size]["redis_bytes_per_open_booking"], "bytes",
            "the record's JSON alone", json_bytes, "value <= 2048", command,
            details={"empty_sweep_ms": reports[size].get(f"empty_sweep_ms_at_{size // 1000}k"),
                     "ms_per_due_booking": reports[size]["ms_per_due_booking"],
                     "fill_seconds": reports[size]["fill_seconds"]}))
    return figures
