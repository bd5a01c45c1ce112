"""The declared deployment: the Procfile names every process and consumes every queue,
beat and Sentry Crons get a schedule they can keep, Redis persists with AOF."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from celery.schedules import crontab
from sentry_sdk.utils import match_regex_list

from tests.ops.support import ops_settings
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match:
            processes[match.group(1)] = match.group(2)
    return processes


def queues_of(command: str) -> set[str]:
    argv = shlex.split(command)
    return set(argv[argv.index("-Q") + 1].split(",")) if "-Q" in argv else set()


def test_procfile_names_every_process() -> None:
    processes = procfile()

    assert set(processes) == {"release", "web", "worker", "payments", "beat", "flower"}
    assert processes["web"] == (
        "gunicorn -c deploy/gunicorn.conf.py worker.http.wsgi:application"
    )
    assert importlib.util.find_spec("worker.http.wsgi") is not None
    assert (ROOT / "deploy" / "gunicorn.conf.py").exists()
    assert processes["beat"].startswith("celery -A worker beat")
    assert processes["flower"].startswith("celery -A worker flower --port=")


def test_every_queue_has_a_consumer_and_payments_its_own() -> None:
    from worker.celeryconfig import QUEUES

    processes = procfile()
    consumed = queues_of(processes["worker"]) | queues_of(processes["payments"])

    assert consumed == set(QUEUES)
    assert queues_of(processes["payments"]) == {"payments"}
    for name in ("worker", "payments"):
        assert "--prefetch-multiplier 1" in processes[name]


def test_flower_refuses_to_start_without_basic_auth() -> None:
    command = procfile()["flower"].replace("celery -A worker flower", "echo", 1)

    unset = subprocess.run(["sh", "-c", command], env={"PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=10, check=False)
    assert unset.returncode != 0 and "FLOWER_BASIC_AUTH" in unset.stderr
    ok = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10,
                        env={"PATH": "/usr/bin:/bin", "FLOWER_BASIC_AUTH": "ops:pw", "PORT": "81"},
                        check=False)
    assert ok.stdout.split() == ["--port=81", "--basic-auth=ops:pw"]


@pytest.mark.parametrize("name", ["worker", "payments"])
def test_procfile_worker_options_are_celery_options(name: str) -> None:
    """Celery parses every option before it honours --help: a misspelt one fails here."""
    command = re.sub(r"\$\{\w+:-(\d+)\}", r"\1", procfile()[name])  # the defaults
    argv = [sys.executable, "-m", *shlex.split(command), "--help"]
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "redis://127.0.0.1:1/0",
           "KORUS_BASE_URL": "http://127.0.0.1:9", "KORUS_TOKEN": "placeholder"}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                            check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def test_redis_persists_with_aof() -> None:
    lines = {line.strip() for line in (ROOT / "deploy" / "redis.conf").read_text().splitlines()}
    assert {"appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"} <= lines
    readme = (ROOT / "deploy" / "README.md").read_text()
    for rule in ("appendonly yes", "appendfsync everysec", "one active", "VISIBILITY_TIMEOUT",
                 "FLOWER_BASIC_AUTH", "BEAT_LOCK_TIMEOUT_SECONDS"):
        assert rule in readme


def test_sweep_schedule_carries_expires_and_a_minutely_monitor(redis_url: str) -> None:
    from worker.celeryconfig import sweep_schedule

    fast = sweep_schedule(15)
    assert fast["booking.sweep"]["schedule"] == 15
    assert fast["booking.sweep"]["options"] == {"expires": 15, "queue": "maintenance"}
    monitor = fast["booking.sweep.minutely"]
    assert monitor["schedule"] == crontab() and monitor["options"]["expires"] == 60
    assert set(sweep_schedule(120)) == {"booking.sweep"}  # whole minutes: monitored as is


def test_sentry_crons_skip_only_the_sub_minute_entry(redis_url: str) -> None:
    from worker.observability.sentry import unmonitored_beat_entries

    excluded = unmonitored_beat_entries(ops_settings(redis_url, sweep_interval_seconds=15))
    assert match_regex_list("booking.sweep", excluded)
    assert not match_regex_list("booking.sweep.minutely", excluded)
    assert unmonitored_beat_entries(ops_settings(redis_url, sweep_interval_seconds=60)) == []


def test_beat_renews_its_lock_well_within_the_timeout() -> None:
    from worker import celeryconfig

    default = Settings.model_fields["beat_lock_timeout_seconds"].default
    assert default == 30
    assert celeryconfig.beat_loop_interval(30) == 5
    for timeout in (2, 5, 30, 300):
        assert celeryconfig.beat_loop_interval(timeout) * 2 <= max(timeout, 2)
    assert celeryconfig.redbeat_lock_timeout == celeryconfig._settings.beat_lock_timeout_seconds
    assert celeryconfig.beat_scheduler == "redbeat.RedBeatScheduler"
