"""Exactly one active beat: two real `celery -A worker beat` processes (RedBeat) share
Redis; only the lock holder sends booking.sweep, and a standby takes over within the lock
timeout when the holder dies.

No worker runs here, so every sweep message stays in the `maintenance` queue (a Redis
list per priority step); its `origin` header names the process that sent it.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.ops.support import log_tail
from tests.support.broker import broker_messages
from tests.support.waits import wait_until
from worker.booking.task_names import TaskName
from worker.processes import Proc, beat_proc, service_env

LOCK_TIMEOUT = 5
LOCK_KEY = "bw:redbeat:lock"


@pytest.fixture(scope="module")
def beat_env(redis_url: str) -> dict[str, str]:
    redis.Redis.from_url(redis_url).flushdb()
    return service_env(redis_url, "http://127.0.0.1:9", SWEEP_INTERVAL_SECONDS="1",
                       BEAT_LOCK_TIMEOUT_SECONDS=str(LOCK_TIMEOUT))


@pytest.fixture
def beats(beat_env: dict[str, str], redis_url: str, tmp_path: Path) -> Iterator[list[Proc]]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    started: list[Proc] = []

    yield started
    for proc in started:
        proc.stop()


def start_beat(beats: list[Proc], env: dict[str, str], tmp_path: Path) -> Proc:
    proc = beat_proc(env, log=tmp_path / f"beat{len(beats)}.log").start()
    beats.append(proc)
    return proc


def sweeps_by_sender(client: redis.Redis) -> Counter[int]:
    """booking.sweep messages waiting in the maintenance queue, per sending process id."""
    senders: Counter[int] = Counter()
    for message in broker_messages(client, "maintenance"):
        if message.task == TaskName.SWEEP:
            origin = message.headers["origin"]
            senders[int(origin.split("@")[0].removeprefix("gen"))] += 1
    return senders


def test_only_the_lock_holder_sends_and_a_standby_takes_over_after_kill_9(
    beats: list[Proc], beat_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    active = start_beat(beats, beat_env, tmp_path)
    wait_until(lambda: sweeps_by_sender(client)[active.pid] >= 2, 20,
               f"sweeps from the first beat\n{log_tail(active.log_path)}")
    standby = start_beat(beats, beat_env, tmp_path)
    wait_until(lambda: "Starting" in (standby.log_path or Path()).read_text(), 20,
               "the standby beat to start")

    before = sweeps_by_sender(client)
    time.sleep(3)  # both running: three sweep intervals
    during = sweeps_by_sender(client)
    assert during[active.pid] - before[active.pid] >= 2
    assert during[standby.pid] == 0, log_tail(standby.log_path)
    ttl = client.pttl(LOCK_KEY)
    assert 0 < ttl <= LOCK_TIMEOUT * 1000

    active.kill(signal.SIGKILL)
    killed_at = time.monotonic()
    assert active.process is not None
    active.process.wait(5)
    last_from_active = sweeps_by_sender(client)[active.pid]
    wait_until(lambda: sweeps_by_sender(client)[standby.pid] >= 1, LOCK_TIMEOUT + 10,
               f"the standby to take over\n{log_tail(standby.log_path)}")
    took_over = time.monotonic() - killed_at

    # Lock timeout, plus one beat loop (1 s) to notice, plus one sweep interval (1 s),
    # plus slack for a loaded machine.
    print(f"standby sent its first sweep {took_over:.1f}s after the active beat was killed")
    assert took_over <= LOCK_TIMEOUT + 4, took_over
    assert sweeps_by_sender(client)[active.pid] == last_from_active
    client.close()


def test_a_frozen_beat_that_lost_its_lock_stops_instead_of_sending(
    beats: list[Proc], beat_env: dict[str, str], redis_url: str, tmp_path: Path
) -> None:
    """Split brain: the active beat freezes (SIGSTOP) past its lock timeout, the standby
    takes over, then the frozen one resumes. Its next renewal fails and it exits, so two
    beats never send together."""
    client = redis.Redis.from_url(redis_url)
    active = start_beat(beats, beat_env, tmp_path)
    wait_until(lambda: sweeps_by_sender(client)[active.pid] >= 1, 20,
               f"sweeps from the first beat\n{log_tail(active.log_path)}")
    standby = start_beat(beats, beat_env, tmp_path)

    active.kill(signal.SIGSTOP)
    wait_until(lambda: sweeps_by_sender(client)[standby.pid] >= 1, LOCK_TIMEOUT + 10,
               f"the standby to take over\n{log_tail(standby.log_path)}")
    frozen_count = sweeps_by_sender(client)[active.pid]
    active.kill(signal.SIGCONT)

    assert active.process is not None
    code = active.process.wait(10)
    assert code != 0
    assert sweeps_by_sender(client)[active.pid] == frozen_count, log_tail(active.log_path)
    assert standby.process is not None and standby.process.poll() is None
    client.close()
