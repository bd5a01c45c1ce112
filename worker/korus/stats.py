"""Korus call statistics shared by the whole fleet: counts, outcomes, latency per endpoint.

Every worker process adds its calls to one Redis hash, and the web front's `/metrics`
exposes it, so operators read one truth for the fleet without scraping each Celery child
process. A process sums its calls and writes them in one pipelined round trip at most
once per `FLUSH_SECONDS` (a call after a quiet second is written at once; a timer writes
what is left): under load that is a round trip per second instead of one per call. The
figures may lag by that second, and a process killed loses at most its last second.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import Counter
from typing import Protocol

import redis

log = logging.getLogger("korus.stats")

KORUS_STATS = "bw:stats:korus"
# At most one write of a process's calls per this many seconds.
FLUSH_SECONDS = 1.0
# Upper bounds in seconds; a call above the last one counts only in +Inf.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
_ID_SEGMENT = re.compile(r"^(?=.*\d)[0-9A-Za-z_-]{16,}$")


class CallObserver(Protocol):
    def __call__(self, method: str, path: str, outcome: str, seconds: float) -> None: ...


def endpoint_template(method: str, path: str) -> str:
    """`POST /v1/booking/orders/{id}/documents/{id}`: ids replaced, query dropped."""
    segments = path.split("?", 1)[0].split("/")
    return f"{method} " + "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in segments)


def bucket_of(seconds: float) -> str:
    for bound in BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


class RedisCallStats:
    """A `CallObserver` adding calls to `bw:stats:korus`, batched (see the module
    docstring); `flush()` writes what is pending now. Never raises."""

    def __init__(self, client: redis.Redis, *, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.client = client
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._sums: dict[str, float] = {}
        self._last_flush = float("-inf")
        self._timer_pid: int | None = None  # the process whose timer is armed

    def __call__(self, method: str, path: str, outcome: str, seconds: float) -> None:
        endpoint = endpoint_template(method, path)
        with self._lock:
            self._counts[f"{endpoint}|count|{outcome}"] += 1
            self._counts[f"{endpoint}|bucket|{bucket_of(seconds)}"] += 1
            field = f"{endpoint}|sum"
            self._sums[field] = self._sums.get(field, 0.0) + seconds
            due = time.monotonic() - self._last_flush >= self.flush_seconds
            arm = not due and self._timer_pid != os.getpid()
            if arm:
                self._timer_pid = os.getpid()
        if due:
            self.flush()
        elif arm:
            timer = threading.Timer(self.flush_seconds, self._on_timer)
            timer.daemon = True
            timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer_pid = None
        self.flush()

    def flush(self) -> None:
        """Write the calls counted since the last write, in one pipelined round trip."""
        with self._lock:
            counts, sums = self._counts, self._sums
            self._counts, self._sums = Counter(), {}
            self._last_flush = time.monotonic()
        if not counts:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for field, count in counts.items():
                pipe.hincrby(KORUS_STATS, field, count)
            for field, total in sums.items():
                pipe.hincrbyfloat(KORUS_STATS, field, total)
            pipe.execute()
        except redis.RedisError as error:  # statistics must never fail a booking step
            log.debug("korus call stats not recorded: %s", type(error).__name__)
