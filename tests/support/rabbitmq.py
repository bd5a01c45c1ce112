"""A RabbitMQ virtual host of a test's own on the machine's server, deleted afterwards.

The server is shared (other runs, other checkouts): every test that talks to RabbitMQ
gets a vhost with a unique name, so no queue, message or binding leaks between runs.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator

HOST, PORT = "127.0.0.1", 5672


def rabbitmq_available() -> bool:
    """A server answers on 127.0.0.1:5672 and `rabbitmqctl` can manage it."""
    if shutil.which("rabbitmqctl") is None:
        return False
    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
    except OSError:
        return False
    return True


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def rabbitmq_vhost(prefix: str = "bw-test") -> Iterator[str]:
    """Create a vhost (guest has every permission on it); yield its broker URL."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    _ctl("add_vhost", name)
    try:
        _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{HOST}:{PORT}/{name}"
    finally:
        _ctl("delete_vhost", name)
