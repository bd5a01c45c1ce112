"""The README's main command: `booking-worker demo`, as a newcomer runs it (subprocess).

The demo starts real processes (sandbox, the Procfile's web, worker, payments, beat,
and Flower with --serve); these tests also prove that none of them outlives the demo,
whether it ends by itself, by Ctrl-C (SIGINT) during the run, or by Ctrl-C in --serve.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

from tests.support.rabbitmq import rabbitmq_available, rabbitmq_vhost

DEMO = str(Path(sys.executable).parent / "booking-worker")


def _clean_env(**env: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("KORUS_", "BROKER_", "REDIS_"))
    }
    return {**clean, **env}


def run_demo(redis_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    redis.Redis.from_url(redis_url).flushdb()
    return subprocess.run(
        [DEMO, "demo", "--bookings", "8", "--redis-url", redis_url, "--timeout", "120"],
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=240,
    )


# -- the processes of a running demo --------------------------------------------------------


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a live process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every process below `root` (pid → start time, so a reused pid is not mistaken)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _stat(int(entry.name))) is not None:
            parents.setdefault(info[0], []).append(int(entry.name))
            starts[int(entry.name)] = info[2]
    found: dict[int, str] = {}
    pending = [root]
    while pending:
        for child in parents.get(pending.pop(), []):
            if child in starts:
                found[child] = starts[child]
                pending.append(child)
    return found


def survivors(processes: dict[int, str]) -> list[int]:
    alive = []
    for pid, start in processes.items():
        info = _stat(pid)
        if info is not None and info[2] == start and info[1] != "Z":
            alive.append(pid)
    return alive


class RunningDemo:
    """The demo as a background process whose output lines can be awaited."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [DEMO, "demo", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a SIGINT for it alone, as a terminal's Ctrl-C
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            if match := re.search(pattern, line):
                return match
        self.kill()
        raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(self.output[-60:]))

    def interrupt(self, timeout: float = 90) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the demo did not stop on SIGINT") from None

    def kill(self) -> None:
        for pid in descendants(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.kill()
        self.proc.wait(10)


# -- the tests -------------------------------------------------------------------------------


def test_demo_completes_every_booking_with_exactly_one_order(redis_url: str) -> None:
    result = run_demo(redis_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed with exactly one order per reservation: 8" in result.stdout
    assert "reservations ordered twice: 0" in result.stdout
    # The summary: bookings by state, orders per booking from the sandbox, Korus calls,
    # payment-to-tickets latency, then one booking's timeline ending in completed.
    for title in (
        "Bookings by final state",
        "Orders per booking",
        "Korus calls by outcome",
        "Webhook accepted → tickets available",
        "Timeline of bk_",
    ):
        assert title in result.stdout, result.stdout
    assert re.search(r"│ 1\s+│\s+8 │", result.stdout), result.stdout  # 8 bookings, 1 order each
    assert "Late Documents Tour" in result.stdout


def test_ctrl_c_during_the_run_stops_every_process() -> None:
    # Embedded Redis (no REDIS_URL), as `make demo` runs: its server must stop too.
    demo = RunningDemo("--bookings", "400", "--timeout", "300", env=_clean_env())
    demo.wait_for(r"^fleet up: web http://127\.0\.0\.1:\d+", timeout=150)
    time.sleep(2)  # bookings are being created and paid
    children = descendants(demo.proc.pid)
    # sandbox, worker, payments (threads pools: no children), beat, web + its worker, redis-server
    assert len(children) >= 7, children

    code = demo.interrupt()

    assert code == 130, "".join(demo.output)
    time.sleep(1)
    assert survivors(children) == [], "processes left behind after Ctrl-C"


def test_serve_keeps_everything_running_until_ctrl_c(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    demo = RunningDemo(
        "--bookings", "4", "--timeout", "120", "--serve", "--redis-url", redis_url,
        env=_clean_env(),
    )
    web = demo.wait_for(r"web front\s+(http://127\.0\.0\.1:\d+)", timeout=200).group(1)
    flower = demo.wait_for(r"Flower\s+(http://127\.0\.0\.1:\d+)\s+basic auth (\S+)", timeout=10)
    curl = demo.wait_for(
        r"curl -s -H 'Authorization: Bearer (\S+)' (http://\S+/v1/bookings/(bk_\w+))", timeout=10
    )
    try:
        assert requests.get(f"{web}/readyz", timeout=5).status_code == 200
        flower_url, auth = flower.group(1), flower.group(2)
        user, _, password = auth.partition(":")
        assert requests.get(flower_url, timeout=5).status_code == 401
        assert requests.get(flower_url, auth=(user, password), timeout=5).status_code == 200
        booking = requests.get(
            curl.group(2), headers={"Authorization": f"Bearer {curl.group(1)}"}, timeout=5
        )
        assert booking.status_code == 200
        assert booking.json()["state"] == "completed"
        assert booking.json()["id"] == curl.group(3)
        children = descendants(demo.proc.pid)
        assert len(children) >= 7, children
    except BaseException:
        demo.kill()
        raise

    code = demo.interrupt()

    assert code == 0, "".join(demo.output)
    time.sleep(1)
    assert survivors(children) == [], "processes left behind after Ctrl-C in --serve"


@pytest.mark.skipif(not rabbitmq_available(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_demo_runs_on_a_rabbitmq_broker(redis_url: str) -> None:
    # A vhost of this run's own: the server is shared, and its default vhost may hold
    # queues declared with other arguments by older versions.
    with rabbitmq_vhost("bw-demo") as broker_url:
        result = run_demo(redis_url, BROKER_URL=broker_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed with exactly one order per reservation: 8" in result.stdout
