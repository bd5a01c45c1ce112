"""The release phase: before a new version takes traffic, prove it can work.

`booking-worker release` (the Procfile's `release` process, a Kubernetes pre-deploy Job,
an `ExecStartPre=` on plain hosts) runs each check once, prints one line per check and
exits non-zero if any failed, so a deployment stops before a process starts on a broken
environment:

- settings: the environment parses (load_settings names each bad variable);
- redis: the state store answers PING (one server or every shard of a Redis Cluster);
- broker: a broker connection opens and every task queue is declared with this
  version's arguments (on RabbitMQ an existing queue declared with other arguments, e.g.
  without `x-max-priority`, is refused here rather than by every worker at start);
- korus: a token is obtained (static KORUS_TOKEN, or client credentials through the
  fleet's shared cache) and Korus accepts it on one read-only call.

Nothing here changes booking state; the checks are safe to run at any time.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from worker.observability.scrub import scrub_text
from worker.settings import Settings

CHECK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = "ok"


def check_redis(settings: Settings) -> None:
    from worker.redis_connect import connect

    client = connect(
        settings.redis_url,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        if not client.ping():
            raise RuntimeError("PING was not answered")
    finally:
        client.close()


def check_broker(settings: Settings) -> None:
    from worker.app import app

    with app.connection_for_write(connect_timeout=CHECK_TIMEOUT_SECONDS) as connection:
        connection.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
        channel = connection.channel()
        try:
            for queue in app.amqp.queues.values():
                queue.bind(channel).declare()
        finally:
            channel.close()


def check_korus(settings: Settings) -> None:
    """A token from the configured source, then one read-only call that needs it.

    With client credentials the token is requested afresh under a cache key of this
    check alone (deleted afterwards): the fleet's cached token would prove nothing about
    credentials that were just rotated.
    """
    from worker.korus.auth import CACHE_KEY
    from worker.korus.client import KorusClient
    from worker.redis_connect import connect

    client = connect(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
    )
    own_key = f"{CACHE_KEY}:release:{uuid.uuid4().hex}"
    try:
        korus = KorusClient.from_settings(settings, client, token_key=own_key, record_calls=False)
        # Read-only, one item: a 401/403 here means the token is refused.
        korus.transport.request("GET", "/v1/ticketing/catalogs", params={"itemsPerPage": 1})
    finally:
        with contextlib.suppress(Exception):
            client.delete(own_key, f"{own_key}:lock")
        client.close()


CHECKS: tuple[tuple[str, Callable[[Settings], None]], ...] = (
    ("redis", check_redis),
    ("broker", check_broker),
    ("korus", check_korus),
)


def run_checks(settings: Settings) -> list[CheckResult]:
    """Every check once, in order, each independent of the others' outcome."""
    results = [CheckResult("settings", True)]
    for name, check in CHECKS:
        try:
            check(settings)
        except Exception as error:  # any failure fails the release; the line says which
            detail = scrub_text(f"{type(error).__name__}: {error}".strip())
            results.append(CheckResult(name, False, detail[:300]))
        else:
            results.append(CheckResult(name, True))
    return results
