"""Liveness of the worker processes that hold claims.

Each process that runs booking steps renews a short Redis key (`bw:alive:<host>:<pid>`)
from a daemon thread. A claim names its owner; once the owner's key lapsed (the process
was killed, its machine died), the claim is dead even if its lease has not run out, so
the sweeper drives the booking again within seconds instead of a lease or a broker
visibility timeout. A process that hangs keeps its key; the claim's lease and the task's
time limit bound that case.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

log = logging.getLogger("booking.liveness")

_started_for: int | None = None
_lock = threading.Lock()


def owner_id() -> str:
    """This process, as claims name it (a forked child gets its own id)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def ensure_heartbeat(beat: Callable[[str, int], None], period_seconds: int) -> str:
    """Start (once per process) the thread that renews this process's liveness key.

    `beat(owner, ttl)` writes the key; it is renewed every period/3 with a TTL of the
    period. The first write happens before this returns, so a claim taken right after
    is already backed by a live key.
    """
    global _started_for
    owner = owner_id()
    with _lock:
        if _started_for == os.getpid():
            return owner
        beat(owner, period_seconds)
        stop_after_fork = os.getpid()

        def renew() -> None:
            event = threading.Event()
            while os.getpid() == stop_after_fork:
                event.wait(max(1.0, period_seconds / 3))
                try:
                    beat(owner, period_seconds)
                except Exception as error:
                    log.warning("liveness key not renewed: %s", error)

        threading.Thread(target=renew, name="liveness", daemon=True).start()
        _started_for = os.getpid()
    return owner
