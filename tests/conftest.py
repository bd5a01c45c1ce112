"""Fixtures shared by every test: the real Redis and the Korus sandbox on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.support.redis_server import test_redis_url

pytest_plugins = ["tests.support.deployment"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with test_redis_url() as url:
        yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test database, flushed before each test."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session", autouse=True)
def app_environment(redis_url: str) -> Iterator[None]:
    """The test process talks to the broker and Redis like the web front does.

    Settings are read once per process, so they are set before anything reads them;
    Korus values here are placeholders (the test process never calls Korus itself:
    tests that need a client build one against their sandbox).
    """
    import os

    saved = dict(os.environ)
    os.environ.update(
        {
            "REDIS_URL": redis_url,
            "KORUS_BASE_URL": "http://127.0.0.1:9",
            "KORUS_TOKEN": "placeholder",
        }
    )
    from worker.settings import load_settings

    load_settings.cache_clear()
    yield
    os.environ.clear()
    os.environ.update(saved)
