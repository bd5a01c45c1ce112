"""`GET /healthz` (the process answers) and `GET /readyz` (Redis and the broker answer).

A load balancer sends traffic only to ready instances; an orchestrator restarts an
instance whose /healthz fails. /readyz opens short-timeout connections of its own so a
hung backend makes the probe fail within a few seconds instead of holding a thread. The
broker check, the timeout and the running of the checks are those of worker.probes (the
same probes for the workers and beat).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import falcon
import redis
from pydantic import BaseModel
from redis.cluster import RedisCluster

from worker.http.problems import NOT_READY, ApiProblem
from worker.probes import PROBE_TIMEOUT_SECONDS, Check, run_checks

log = logging.getLogger("booking.http")


class HealthStatus(BaseModel):
    status: str
    checks: dict[str, str] | None = None


def redis_check(client: redis.Redis) -> Callable[[], None]:
    """PING on a new connection with the pool's address and a short timeout."""
    if isinstance(client, RedisCluster):
        # A cluster client has a pool per node: every primary must answer PING.
        return lambda: _ping_primaries(client)
    pool = client.connection_pool
    kwargs: dict[str, Any] = dict(pool.connection_kwargs)
    kwargs.update(
        socket_timeout=PROBE_TIMEOUT_SECONDS, socket_connect_timeout=PROBE_TIMEOUT_SECONDS
    )

    def check() -> None:
        connection = pool.connection_class(**kwargs)
        try:
            connection.connect()
            connection.send_command("PING")
            if connection.read_response() not in ("PONG", b"PONG", True):
                raise redis.ConnectionError("unexpected PING answer")
        finally:
            connection.disconnect()

    return check


def _ping_primaries(client: RedisCluster) -> None:
    if not client.ping(target_nodes=RedisCluster.PRIMARIES):
        raise redis.ConnectionError("a primary did not answer PING")


class Healthz:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """200 whenever the process can answer; touches no backend."""
        resp.media = HealthStatus(status="ok").model_dump(exclude_none=True)


class Readyz:
    def __init__(self, checks: Sequence[Check]) -> None:
        self.checks = list(checks)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """200 when every backend answers; 503 problem naming the ones that do not."""
        results = run_checks(self.checks, log)
        if all(result == "ok" for result in results.values()):
            resp.media = HealthStatus(status="ready", checks=results).model_dump()
            return
        raise ApiProblem(
            503,
            type=NOT_READY,
            title="Not ready",
            detail="a backend is unreachable",
            checks=results,
            headers={"Retry-After": "5"},
        )
