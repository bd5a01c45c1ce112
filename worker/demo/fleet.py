"""The demo's fleet: the sandbox and the Procfile's processes, each a real process.

`web`, `worker`, `payments`, `beat` (and `flower` with `--serve`) run from their own
Procfile lines (`processes.procfile_proc`), so the demo runs what a deployment runs and
follows the Procfile when a command changes. Every port is a free loopback port; the
secrets (merchant key, Stripe endpoint secret, Flower password) are generated per run.
`running_fleet` stops every process group on the way out, whatever ended the run.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from worker.processes import (
    Proc,
    free_port,
    procfile_proc,
    read_procfile,
    sandbox_proc,
    service_env,
    stop_all,
    wait_http,
)

# 10 % of calls to every endpoint fail, spread over every fault kind the sandbox has.
FAULT_MIX = {
    "error_rate": 0.03,
    "rate_limit_rate": 0.02,
    "timeout_before_commit_rate": 0.015,
    "timeout_after_commit_rate": 0.015,
    "drop_rate": 0.02,
}
# Short enough for a quick demo, long enough that the late-documents bookings go
# through documents_pending.
DOCUMENTS_DELAY_SECONDS = 2.0
# Settings of the demo's processes: short Korus timeouts (a sandbox on loopback answers
# in milliseconds; its injected timeouts last 3 s) and retries that stay quick.
DEMO_SETTINGS = {
    "KORUS_READ_TIMEOUT": "2",
    "KORUS_CONNECT_TIMEOUT": "1",
    "RETRY_BACKOFF_CAP_SECONDS": "8",
    "STUCK_AFTER_SECONDS": "30",
    # The sweeper drives retries and waits kept in Redis: a quick beat for a demo.
    "SWEEP_INTERVAL_SECONDS": "2",
    "WEB_CONCURRENCY": "2",
    "WEB_THREADS": "8",
}
STARTUP_SECONDS = 90.0


class FleetError(RuntimeError):
    """A process of the demo did not start or died; the message names it and its log."""


@dataclass(frozen=True)
class FleetConfig:
    redis_url: str
    logs: Path  # one log file per process
    workers: int = 1
    concurrency: int = 4
    fault_rate: float = 0.0
    flower: bool = False


@dataclass
class Fleet:
    redis_url: str
    sandbox_url: str
    web_url: str
    flower_url: str | None
    merchant_key: str
    stripe_secret: str
    metrics_token: str
    flower_auth: str | None
    logs: Path
    procs: list[Proc] = field(default_factory=list)

    def check_alive(self) -> None:
        """Raise FleetError if any process has exited (the demo cannot go on)."""
        for proc in self.procs:
            if not proc.running:
                raise FleetError(f"{proc.name} exited; {_log_tail(proc)}")

    def stop(self) -> None:
        stop_all(list(reversed(self.procs)))


def find_procfile() -> Path:
    """The clone's Procfile: next to the `worker` package, else in the current directory."""
    candidates = [Path(__file__).resolve().parents[2] / "Procfile", Path.cwd() / "Procfile"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FleetError("no Procfile found: run the demo from a clone of booking-worker")


def fault_spec(rate: float) -> str:
    """The sandbox `--fault` rule failing `rate` of all calls, over every fault kind."""
    scale = rate / 0.10
    parts = [f"{name}={value * scale:.4f}" for name, value in FAULT_MIX.items()]
    return "*:" + ",".join([*parts, "timeout_seconds=3", "retry_after=1"])


def _log_tail(proc: Proc, lines: int = 15) -> str:
    if proc.log_path is None or not proc.log_path.exists():
        return "no log"
    tail = proc.log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"last lines of {proc.log_path}:\n" + "\n".join(tail)


def _command(commands: Mapping[str, str], name: str, procfile: Path) -> str:
    try:
        return commands[name]
    except KeyError:
        raise FleetError(f"{procfile} has no {name!r} process") from None


def _wait_ready(url: str, proc: Proc, deadline: float) -> None:
    """Until `url` answers 200 (the web front's /readyz: Redis and broker reachable)."""
    while time.monotonic() < deadline:
        if not proc.running:
            raise FleetError(f"{proc.name} exited at start; {_log_tail(proc)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise FleetError(f"{url} not ready after {STARTUP_SECONDS:.0f}s; {_log_tail(proc)}")


def _wait_worker(proc: Proc, deadline: float) -> None:
    """Until the Celery worker logs that it is ready to take tasks."""
    while time.monotonic() < deadline:
        if not proc.running:
            raise FleetError(f"{proc.name} exited at start; {_log_tail(proc)}")
        if proc.log_path and proc.log_path.exists() and " ready." in proc.log_path.read_text(
            errors="replace"
        ):
            return
        time.sleep(0.2)
    raise FleetError(f"{proc.name} not ready after {STARTUP_SECONDS:.0f}s; {_log_tail(proc)}")


def _start_fleet(config: FleetConfig, fleet: Fleet, procfile: Path) -> None:
    commands = read_procfile(procfile)
    sandbox_port = int(fleet.sandbox_url.rsplit(":", 1)[1])
    web_port = int(fleet.web_url.rsplit(":", 1)[1])
    env = service_env(
        config.redis_url,
        fleet.sandbox_url,
        **DEMO_SETTINGS,
        STRIPE_WEBHOOK_SECRET=fleet.stripe_secret,
        MERCHANT_API_KEYS=fleet.merchant_key,
        METRICS_TOKEN=fleet.metrics_token,
        WORKER_CONCURRENCY=str(config.concurrency),
        PAYMENTS_CONCURRENCY=str(max(1, config.concurrency // 2)),
    )
    cwd = procfile.parent
    logs = config.logs

    def start(proc: Proc) -> Proc:
        fleet.procs.append(proc.start())
        return proc

    extra = ["--documents-delay", f"{DOCUMENTS_DELAY_SECONDS:g}"]
    if config.fault_rate > 0:
        extra += ["--fault", fault_spec(config.fault_rate)]
    sandbox = sandbox_proc(sandbox_port, env, *extra, log=logs / "sandbox.log")
    sandbox.die_with_parent = True
    start(sandbox)
    wait_http(f"{fleet.sandbox_url}/_sandbox/faults", timeout=STARTUP_SECONDS)

    celery_procs = []
    for name in ("worker", "payments"):
        line = _command(commands, name, procfile)
        for n in range(config.workers):
            # Several copies on one host need distinct node names (the last -n wins).
            command = f"{line} -n {name}{n}@%h" if config.workers > 1 else line
            label = f"{name}{n}" if config.workers > 1 else name
            proc = procfile_proc(
                label, command, env, cwd=cwd, log=logs / f"{label}.log", die_with_parent=True
            )
            celery_procs.append(start(proc))
    start(
        procfile_proc(
            "beat",
            _command(commands, "beat", procfile),
            env,
            cwd=cwd,
            log=logs / "beat.log",
            die_with_parent=True,
        )
    )
    # PORT is the Procfile convention; the gunicorn variable keeps the demo's front on
    # loopback (another server ignores it and reads PORT/HOST).
    web_env = {
        **env,
        "PORT": str(web_port),
        "HOST": "127.0.0.1",
        "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{web_port}",
    }
    web = start(
        procfile_proc(
            "web",
            _command(commands, "web", procfile),
            web_env,
            cwd=cwd,
            log=logs / "web.log",
            die_with_parent=True,
        )
    )
    if config.flower and fleet.flower_url and fleet.flower_auth:
        flower_port = fleet.flower_url.rsplit(":", 1)[1]
        flower_env = {
            **env,
            "PORT": flower_port,
            "FLOWER_ADDRESS": "127.0.0.1",
            "FLOWER_BASIC_AUTH": fleet.flower_auth,
        }
        start(
            procfile_proc(
                "flower",
                _command(commands, "flower", procfile),
                flower_env,
                cwd=cwd,
                log=logs / "flower.log",
                die_with_parent=True,
            )
        )
    deadline = time.monotonic() + STARTUP_SECONDS
    _wait_ready(f"{fleet.web_url}/readyz", web, deadline)
    for proc in celery_procs:
        _wait_worker(proc, deadline)
    if config.flower and fleet.flower_url:
        flower = fleet.procs[-1]
        _wait_ready_any(fleet.flower_url, flower, deadline)


def _wait_ready_any(url: str, proc: Proc, deadline: float) -> None:
    """Until `url` answers at all (Flower answers 401 without credentials)."""
    while time.monotonic() < deadline:
        if not proc.running:
            raise FleetError(f"{proc.name} exited at start; {_log_tail(proc)}")
        with contextlib.suppress(requests.RequestException):
            requests.get(url, timeout=2)
            return
        time.sleep(0.2)
    raise FleetError(f"{url} did not answer after {STARTUP_SECONDS:.0f}s; {_log_tail(proc)}")


@contextlib.contextmanager
def running_fleet(config: FleetConfig) -> Iterator[Fleet]:
    """Start the fleet; stop every process on exit, even on Ctrl-C (a second Ctrl-C or
    a SIGTERM during the stop is ignored, so the stop always finishes)."""
    procfile = find_procfile()
    flower = config.flower
    fleet = Fleet(
        redis_url=config.redis_url,
        sandbox_url=f"http://127.0.0.1:{free_port()}",
        web_url=f"http://127.0.0.1:{free_port()}",
        flower_url=f"http://127.0.0.1:{free_port()}" if flower else None,
        merchant_key="mk_demo_" + secrets.token_urlsafe(24),
        stripe_secret="whsec_demo_" + secrets.token_urlsafe(24),
        metrics_token=secrets.token_urlsafe(24),
        flower_auth=f"demo:{secrets.token_urlsafe(12)}" if flower else None,
        logs=config.logs,
    )
    try:
        _start_fleet(config, fleet, procfile)
        yield fleet
    finally:
        stopping = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in stopping}
        try:
            fleet.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
