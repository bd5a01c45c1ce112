"""Korus call statistics shared by the whole fleet: counts, outcomes, latency per endpoint.

Every worker process adds its calls to one Redis hash (one pipelined round trip per call,
next to an HTTP call that costs far more), and the web front's `/metrics` exposes it, so
operators read one truth for the fleet without scraping each Celery child process.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

import redis

log = logging.getLogger("korus.stats")

KORUS_STATS = "bw:stats:korus"
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
    """A `CallObserver` adding each call to `bw:stats:korus`. Never raises."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def __call__(self, method: str, path: str, outcome: str, seconds: float) -> None:
        endpoint = endpoint_template(method, path)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hincrby(KORUS_STATS, f"{endpoint}|count|{outcome}", 1)
            pipe.hincrbyfloat(KORUS_STATS, f"{endpoint}|sum", seconds)
            pipe.hincrby(KORUS_STATS, f"{endpoint}|bucket|{bucket_of(seconds)}", 1)
            pipe.execute()
        except redis.RedisError as error:  # statistics must never fail a booking step
            log.debug("korus call stats not recorded: %s", type(error).__name__)
