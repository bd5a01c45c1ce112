"""What every figure of `python -m bench` shares: the figure record, private Redis servers,
a deployment (sandbox + Celery workers) on loopback, and a driver of bookings.

Every process started here is a child of the bench, bounded in time and stopped on the
way out (also on error). Redis servers are private (`redis-server` on a port of
PORT_RANGE, no persistence), so a benchmark never touches a shared database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from worker.processes import Proc, free_port, sandbox_proc, service_env, wait_http  # noqa: E402

PORT_RANGE = range(32000, 32100)
LOGS = Path(tempfile.gettempdir()) / "booking-bench"


@dataclass
class Figure:
    """One printed figure, measured with its baseline in the same run."""

    name: str
    value: float | None
    unit: str
    baseline: str
    baseline_value: float | None
    target: str
    command: str
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        for key in ("value", "baseline_value"):
            if isinstance(data[key], float):
                data[key] = round(data[key], 3)
        return data


@dataclass
class Options:
    smoke: bool = False
    large: bool = False
    keep_logs: bool = False

    def size(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full


def command_for(name: str, options: Options) -> str:
    flags = " --smoke" if options.smoke else ""
    flags += " --large" if options.large else ""
    return f"python -m bench --only {name}{flags}"


# -- private Redis -----------------------------------------------------------------------
def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextlib.contextmanager
def private_redis(maxmemory: str = "8gb") -> Iterator[str]:
    """A redis-server of our own on a free port of PORT_RANGE; killed on the way out."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    for port in PORT_RANGE:
        if not _port_free(port):
            continue
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", workdir, "--maxmemory", maxmemory,
                "--protected-mode", "no", "--logfile", ""]
        proc = Proc(f"redis-{port}", argv, dict(os.environ)).start()
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        try:
            for _ in range(100):
                with contextlib.suppress(redis.ConnectionError):
                    client.ping()
                    break
                if proc.process is not None and proc.process.poll() is not None:
                    break
                time.sleep(0.05)
            else:
                raise TimeoutError(f"redis-server on {port} did not answer")
            if proc.process is not None and proc.process.poll() is not None:
                continue  # lost the port to someone else: try the next one
            try:
                yield url
            finally:
                client.close()
                proc.stop(timeout=10)
                shutil.rmtree(workdir, ignore_errors=True)
            return
        finally:
            proc.stop(timeout=10)
    raise SystemExit(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def command_counts(url: str) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT (INFO commandstats)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def reset_stats(*urls: str) -> None:
    for url in urls:
        client = redis.Redis.from_url(url)
        client.config_resetstat()
        client.close()


# -- a deployment on loopback --------------------------------------------------------------
@dataclass
class Deployment:
    redis_url: str
    broker_url: str
    sandbox_url: str
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


def celery_worker(env: dict[str, str], *, app: str = "worker", pool: str = "prefork",
                  concurrency: int = 4, name: str = "bench", queues: str | None = None,
                  log: Path | None = None) -> Proc:
    from worker.processes import ALL_QUEUES

    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues or ALL_QUEUES,
            "-P", pool, "-c", str(concurrency), "-n", f"{name}-{free_port()}@%h",
            "--prefetch-multiplier", "1", "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle"]
    return Proc(name, argv, env, log)


@contextlib.contextmanager
def deployment(*, redis_url: str, broker_url: str | None = None, sandbox_args: Sequence[str] = (),
               workers: int = 0, pool: str = "prefork", concurrency: int = 4,
               app: str = "worker", label: str = "bench",
               overrides: dict[str, str] | None = None) -> Iterator[Deployment]:
    """The Korus sandbox and `workers` Celery workers of `app`, stopped on the way out."""
    LOGS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    settings = {"LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), **(overrides or {})}
    if broker_url:
        settings["BROKER_URL"] = broker_url
    env = service_env(redis_url, sandbox_url, **settings)
    dep = Deployment(redis_url, broker_url or redis_url, sandbox_url, env)
    try:
        dep.procs.append(sandbox_proc(port, env, "--documents-delay", "0", *sandbox_args,
                                      log=LOGS / f"{label}-sandbox.log").start())
        wait_http(f"{sandbox_url}/_sandbox/faults", timeout=30)
        start_workers(dep, workers, pool=pool, concurrency=concurrency, app=app, label=label)
        yield dep
    finally:
        dep.stop()


def start_workers(dep: Deployment, count: int, *, pool: str, concurrency: int, app: str,
                  label: str) -> list[Proc]:
    started = []
    for n in range(count):
        proc = celery_worker(dep.env, app=app, pool=pool, concurrency=concurrency,
                             name=f"{label}{n}", log=LOGS / f"{label}-worker{n}.log")
        dep.procs.append(proc.start())
        started.append(proc)
    return started


def stop_procs(dep: Deployment, procs: list[Proc]) -> None:
    for proc in procs:
        proc.stop()
        if proc in dep.procs:
            dep.procs.remove(proc)


def run_quiet(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          check=False)


def percentile(values: Sequence[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_drained(url: str, timeout: float = 60.0) -> bool:
    """True once every queue list (all priority steps) and the unacked set are empty."""
    from worker.celeryconfig import QUEUES

    names = [f"{q}{suffix}" for q in QUEUES for suffix in ("", ":3", ":6", ":9")]
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.llen(name)
            pipe.hlen("unacked")
            if not any(pipe.execute()):
                return True
            time.sleep(0.05)
        return False
    finally:
        client.close()


def process_tree(pid: int) -> set[int]:
    """`pid` and all its descendants (Linux /proc)."""
    found = {pid}
    frontier = [pid]
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def cpu_seconds(pids: set[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            continue
    return total


def redis_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


class CpuMeter:
    """CPU seconds spent by groups of processes between start() and stop()."""

    def __init__(self, groups: dict[str, set[int]]) -> None:
        self.groups = groups
        self.spent: dict[str, float] = {}
        self._before: dict[str, float] = {}

    def _self_cpu(self) -> float:
        usage = os.times()
        return usage.user + usage.system

    def start(self) -> None:
        self._before = {name: cpu_seconds(pids) for name, pids in self.groups.items()}
        self._before["driver"] = self._self_cpu()

    def stop(self) -> dict[str, float]:
        self.spent = {name: cpu_seconds(pids) - self._before[name]
                      for name, pids in self.groups.items()}
        self.spent["driver"] = self._self_cpu() - self._before["driver"]
        return self.spent
