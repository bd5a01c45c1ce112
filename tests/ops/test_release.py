"""`booking-worker release` (the Procfile's release process): passes on a working
environment, and names the failing check with a non-zero exit for each kind of failure."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Exchange, Queue

from tests.support.backends import unavailable
from tests.support.rabbitmq import rabbitmq_available, rabbitmq_vhost
from worker.processes import service_env

RELEASE = [str(Path(sys.executable).parent / "booking-worker"), "release"]
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def release(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(RELEASE, env=env, capture_output=True, text=True, timeout=90,
                          check=False)


@pytest.fixture(scope="module")
def good_env(redis_url: str, sandbox: Any) -> dict[str, str]:
    """Client credentials against the sandbox, Redis as store and broker."""
    env = service_env(redis_url, sandbox.url)
    return {k: v for k, v in env.items() if k != "BROKER_URL"}


def failed_checks(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[0] for line in result.stderr.splitlines() if " FAILED" in line]


def test_release_passes_when_everything_answers(good_env: dict[str, str]) -> None:
    result = release(good_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:4] == ["settings  ok", "redis     ok", "broker    ok",
                                             "korus     ok"]
    assert "release checks passed" in result.stdout


def test_release_passes_with_a_static_token_korus_accepts(
    good_env: dict[str, str], sandbox: Any
) -> None:
    import requests

    token = requests.post(
        good_env["KORUS_TOKEN_URL"],
        data={"grant_type": "client_credentials"},
        auth=("sandbox", "sandbox"),
        timeout=10,
    ).json()["access_token"]
    env = {k: v for k, v in good_env.items() if not k.startswith("KORUS_CLIENT")}
    env.pop("KORUS_TOKEN_URL")

    result = release({**env, "KORUS_TOKEN": token})

    assert result.returncode == 0, result.stderr


def test_invalid_settings_exit_2_naming_the_variable(good_env: dict[str, str]) -> None:
    env = {k: v for k, v in good_env.items() if k != "KORUS_BASE_URL"}

    result = release(env)

    assert result.returncode == 2
    assert "KORUS_BASE_URL: is required but not set" in result.stderr
    assert "settings  FAILED" in result.stderr


def test_unreachable_redis_fails_the_release(good_env: dict[str, str], redis_url: str) -> None:
    # The broker stays up, so only what needs the store fails.
    result = release({**good_env, "REDIS_URL": DOWN, "BROKER_URL": redis_url})

    assert result.returncode == 1
    assert failed_checks(result) == ["redis", "korus"]  # the token cache lives in Redis
    assert "release refused: redis, korus failed" in result.stderr


def test_unreachable_broker_fails_the_release(good_env: dict[str, str]) -> None:
    result = release({**good_env, "BROKER_URL": DOWN})

    assert result.returncode == 1
    assert failed_checks(result) == ["broker"]


def test_refused_korus_credentials_fail_the_release_even_with_a_cached_token(
    good_env: dict[str, str],
) -> None:
    # A first release caches a good token for the fleet; rotated (wrong) credentials must
    # still be caught: the check asks the token endpoint itself.
    assert release(good_env).returncode == 0

    result = release({**good_env, "KORUS_CLIENT_SECRET": "wrong"})

    assert result.returncode == 1
    assert failed_checks(result) == ["korus"]
    assert "token endpoint refused the client" in result.stderr
    assert "wrong" not in result.stderr


def test_a_token_korus_refuses_fails_the_release(good_env: dict[str, str]) -> None:
    env = {k: v for k, v in good_env.items() if not k.startswith("KORUS_CLIENT")}
    env.pop("KORUS_TOKEN_URL")

    result = release({**env, "KORUS_TOKEN": "forged-token"})

    assert result.returncode == 1
    assert failed_checks(result) == ["korus"]
    assert "401" in result.stderr and "forged-token" not in result.stderr


def test_unreachable_korus_fails_the_release(good_env: dict[str, str]) -> None:
    result = release({**good_env, "KORUS_BASE_URL": "http://127.0.0.1:9",
                      "KORUS_TOKEN": "static", "KORUS_CONNECT_TIMEOUT": "1"})

    assert result.returncode == 1
    assert failed_checks(result) == ["korus"]


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    if not rabbitmq_available():
        unavailable("no RabbitMQ on 127.0.0.1:5672 (or no rabbitmqctl)")
    with rabbitmq_vhost("bw-release") as url:
        yield url


def test_release_declares_the_priority_queues_on_rabbitmq(
    good_env: dict[str, str], vhost: str
) -> None:
    result = release({**good_env, "BROKER_URL": vhost})

    assert result.returncode == 0, result.stderr
    with Connection(vhost) as connection:
        channel = connection.channel()
        # Declaring `payments` without x-max-priority is refused: the release declared it
        # with its priority argument.
        plain = Queue("payments", Exchange(""), routing_key="payments", durable=True)
        with pytest.raises(PreconditionFailed, match="x-max-priority"):
            plain.bind(channel).declare()


def test_a_queue_declared_without_priorities_fails_the_release(
    good_env: dict[str, str], vhost: str
) -> None:
    """An older deployment's queue (no x-max-priority) would stop every new worker at
    start; the release catches it first."""
    with Connection(vhost) as connection:
        channel = connection.channel()
        Queue("payments", Exchange(""), routing_key="payments").bind(channel).delete()
        Queue("payments", Exchange(""), routing_key="payments", durable=True).bind(
            channel).declare()

    result = release({**good_env, "BROKER_URL": vhost})

    assert result.returncode == 1
    assert failed_checks(result) == ["broker"]
    assert "x-max-priority" in result.stderr


def test_release_is_the_procfile_release_process() -> None:
    procfile = (Path(__file__).resolve().parents[2] / "Procfile").read_text()

    assert "\nrelease: booking-worker release\n" in procfile
    assert os.access(RELEASE[0], os.X_OK)
