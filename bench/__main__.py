"""`python -m bench`: every figure with its baseline from the same run, a table, a JSON file.

    python -m bench                      # all figures (about 10 minutes on 2 cores)
    python -m bench --smoke              # tiny sizes, under a minute: proves it still runs
    python -m bench --only sweep_scale --large   # sweep at 1M open bookings too (opt-in)
    python -m bench --json figures.json

A figure that misses its target is printed, never an error: benchmarks are not tests.
Only a crash of the harness (a figure that could not be measured at all) exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

from bench.common import ROOT, Figure, Options

FIGURES = (
    "pipeline_throughput",
    "latency_under_load",
    "io_pools",
    "webhook_ingress",
    "sweep_scale",
    "work_per_booking",
    "sandbox_capacity",
)


def _defaults() -> None:
    """Settings the driver's imports need; every figure passes its own URLs explicitly."""
    from worker.processes import service_env

    for key, value in service_env("redis://127.0.0.1:1/0", "http://127.0.0.1:9").items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("LOG_LEVEL", "WARNING")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "baseline", "ratio", "target")]
    for f in figures:
        rows.append((f.name, fmt(f.value), f.unit, f"{fmt(f.baseline_value)} ({f.baseline})",
                     fmt(f.ratio), f.target + (f"  [{f.note}]" if f.note else "")))
    widths = [min(60, max(len(r[i]) for r in rows)) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if len(c) <= w else c[: w - 1] + "…"
                 for c, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (CI: under 60 s)")
    parser.add_argument("--only", default=None, help=f"comma-separated: {', '.join(FIGURES)}")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the figures here")
    parser.add_argument("--large", action="store_true",
                        help="sweep_scale also at 1M open bookings (about 3 GB of Redis)")
    args = parser.parse_args(argv)
    names = FIGURES if not args.only else tuple(n.strip() for n in args.only.split(","))
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    _defaults()
    os.chdir(ROOT)
    # SIGTERM unwinds like Ctrl-C, so every process and Redis server started is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    options = Options(smoke=args.smoke, large=args.large)
    figures: list[Figure] = []
    crashed: list[str] = []
    started = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        try:
            module: Any = importlib.import_module(f"bench.{name}")
            measured = module.measure(options)
        except Exception:
            traceback.print_exc()
            crashed.append(name)
            continue
        figures.extend(measured)
        for figure in measured:
            print(f"   {figure.name}: {fmt(figure.value)} {figure.unit} "
                  f"(baseline {fmt(figure.baseline_value)}, ratio {fmt(figure.ratio)})",
                  file=sys.stderr, flush=True)
        print(f"   {name} took {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
    print()
    print(table(figures))
    print(f"\n{len(figures)} figures in {time.monotonic() - started:.0f}s"
          + (f"; machine load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg")
             else ""))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"figures": [f.as_json() for f in figures],
                       "smoke": args.smoke, "crashed": crashed}, out, indent=2)
        print(f"figures written to {args.json}")
    if crashed:
        print(f"could not measure: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
