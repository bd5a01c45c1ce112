"""Fixtures of the HTTP front tests: a real gunicorn on loopback, and the Redis it uses.

The server is started once per module, after the test database is flushed: flushing
under a running server would drop the broker's queue bindings it has already declared.
So these tests never flush; each works on bookings and event ids of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.http.helpers import WebServer, web_env


@pytest.fixture(scope="module")
def db(redis_url: str) -> Iterator[redis.Redis]:
    """The test database (not flushed per test: see the module docstring)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="module")
def web(
    redis_url: str, db: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebServer]:
    db.flushdb()
    log = tmp_path_factory.mktemp("web") / "gunicorn.log"
    server = WebServer(web_env(redis_url), log).start()
    yield server
    server.stop()
