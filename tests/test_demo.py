"""The README's main command: `booking-worker demo`, as a newcomer runs it (subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.support.rabbitmq import rabbitmq_available, rabbitmq_vhost

DEMO = str(Path(sys.executable).parent / "booking-worker")


def run_demo(redis_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    redis.Redis.from_url(redis_url).flushdb()
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("KORUS_", "BROKER_", "REDIS_"))
    }
    return subprocess.run(
        [DEMO, "demo", "--bookings", "8", "--redis-url", redis_url, "--timeout", "120"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_completes_every_booking_with_exactly_one_order(redis_url: str) -> None:
    result = run_demo(redis_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed with exactly one order per reservation: 8" in result.stdout
    assert "reservations ordered twice: 0" in result.stdout


@pytest.mark.skipif(not rabbitmq_available(), reason="no RabbitMQ on 127.0.0.1:5672")
def test_demo_runs_on_a_rabbitmq_broker(redis_url: str) -> None:
    # A vhost of this run's own: the server is shared, and its default vhost may hold
    # queues declared with other arguments by older versions.
    with rabbitmq_vhost("bw-demo") as broker_url:
        result = run_demo(redis_url, BROKER_URL=broker_url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed with exactly one order per reservation: 8" in result.stdout
