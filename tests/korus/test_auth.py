"""Token providers: one token for the fleet through real Redis, one refresher, bounded waits."""

from __future__ import annotations

import threading
import time
import urllib.parse
from typing import TYPE_CHECKING

import pytest
import redis

from tests.korus.conftest import static_client
from tests.korus.scripted_server import Reply, ScriptedServer
from tests.support.korus import TOKEN_CALL
from worker.korus import (
    KorusAuthError,
    KorusClient,
    KorusTransientError,
    SharedTokenProvider,
    StaticTokenProvider,
)
from worker.korus.auth import CachedToken
from worker.settings import Settings

if TYPE_CHECKING:
    from korus_sandbox.admin import SandboxAdmin
    from korus_sandbox.server import Sandbox

KEY = "bw:korus:token"
GRANT = {
    "access_token": "a1",
    "expires_in": 1800,
    "refresh_token": "r1",
    "refresh_expires_in": 1800,
}


def sandbox_tokens(redis_client: redis.Redis, sandbox: Sandbox) -> SharedTokenProvider:
    """A provider with the sandbox's client credentials, sharing its token through the
    test Redis."""
    return SharedTokenProvider(redis_client, sandbox.token_url, "sandbox", "sandbox")


def _token_calls(admin: SandboxAdmin) -> int:
    return int(admin.calls().get(TOKEN_CALL, 0))


def _run_in_threads(count: int, work: object) -> list[BaseException]:
    """Start `count` threads at once on `work(i)`; return the errors they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait(timeout=5)
        try:
            work(index)  # type: ignore[operator]
        except BaseException as error:  # collected, asserted by the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def test_clients_in_many_threads_share_one_token_request(
    sandbox: Sandbox, admin: SandboxAdmin, redis_client: redis.Redis
) -> None:
    def work(_index: int) -> None:
        # Each thread is its own "worker": its own provider and client, one Redis key.
        tokens = sandbox_tokens(redis_client, sandbox)
        client = KorusClient(sandbox.url, tokens)
        for _ in range(3):
            assert client.list_catalogs()

    assert _run_in_threads(8, work) == []
    assert _token_calls(admin) == 1


def test_a_revoked_cached_token_causes_one_refresh_for_all_workers(
    sandbox: Sandbox, admin: SandboxAdmin, redis_client: redis.Redis
) -> None:
    now = time.time()
    revoked = CachedToken("revoked-token", expires_at=now + 1000, refresh_at=now + 900)
    redis_client.set(KEY, revoked.to_json())

    def work(_index: int) -> None:
        tokens = sandbox_tokens(redis_client, sandbox)
        assert KorusClient(sandbox.url, tokens).list_catalogs()

    assert _run_in_threads(6, work) == []
    assert _token_calls(admin) == 1


def test_a_token_lapsed_at_korus_is_refreshed_once_on_401(
    sandbox: Sandbox, admin: SandboxAdmin, redis_client: redis.Redis
) -> None:
    admin.configure(token_lifetime_seconds=1.0)
    tokens = sandbox_tokens(redis_client, sandbox)
    client = KorusClient(sandbox.url, tokens)
    client.list_catalogs()
    # A clock skew: this process believes its copy is good for long; Korus lapsed it.
    first = tokens.token()
    tokens._local = CachedToken(first, expires_at=time.time() + 600, refresh_at=time.time() + 500)
    admin.configure(token_lifetime_seconds=1800.0)
    time.sleep(1.2)

    assert client.list_catalogs()

    assert tokens.token() != first
    assert _token_calls(admin) == 2


def test_a_token_near_expiry_is_refreshed_ahead_of_time(
    sandbox: Sandbox, admin: SandboxAdmin, redis_client: redis.Redis
) -> None:
    admin.configure(token_lifetime_seconds=1.0)
    tokens = sandbox_tokens(redis_client, sandbox)
    first = tokens.token()
    assert 0 < redis_client.pttl(KEY) <= 1000  # the Redis TTL is the token's lifetime

    time.sleep(0.6)  # past the refresh point (half of a short lifetime), before expiry

    assert tokens.token() != first
    assert _token_calls(admin) == 2


def test_bad_client_credentials_are_an_auth_error(
    sandbox: Sandbox, admin: SandboxAdmin, redis_client: redis.Redis
) -> None:
    tokens = SharedTokenProvider(redis_client, sandbox.token_url, "sandbox", "wrong")

    with pytest.raises(KorusAuthError):
        KorusClient(sandbox.url, tokens).list_catalogs()
    assert redis_client.get(KEY) is None


def test_a_bad_static_token_is_an_auth_error(sandbox: Sandbox, admin: SandboxAdmin) -> None:
    with pytest.raises(KorusAuthError) as caught:
        static_client(sandbox.url, "not-a-korus-token").list_catalogs()
    assert caught.value.status == 401


@pytest.mark.parametrize("reply", [Reply(503, {}), Reply(200, {}, delay=1.0)])
def test_token_endpoint_outage_is_transient(
    server: ScriptedServer, redis_client: redis.Redis, reply: Reply
) -> None:
    server.reply(reply)
    tokens = SharedTokenProvider(
        redis_client, f"{server.url}/token", "id", "secret", None, timeout=(1.0, 0.3)
    )

    with pytest.raises(KorusTransientError):
        tokens.token()
    assert redis_client.get(f"{KEY}:lock") is None  # the refresher released its lock


def test_refresh_token_grant_is_tried_first_then_client_credentials(
    server: ScriptedServer, redis_client: redis.Redis
) -> None:
    now = time.time()
    stale = CachedToken(
        "old", now + 60, refresh_at=now - 1, refresh_token="rt", refresh_expires_at=now + 600
    )
    redis_client.set(KEY, stale.to_json())
    server.reply(Reply(400, {"error": "invalid_grant"}), Reply(200, GRANT))
    tokens = SharedTokenProvider(redis_client, f"{server.url}/token", "id", "secret", None)

    assert tokens.token() == "a1"

    forms = [urllib.parse.parse_qs(seen.body.decode()) for seen in server.seen]
    assert [form["grant_type"] for form in forms] == [["refresh_token"], ["client_credentials"]]
    assert forms[0]["refresh_token"] == ["rt"]
    assert forms[1]["client_id"] == ["id"] and forms[1]["client_secret"] == ["secret"]


def test_the_process_copy_spares_a_redis_round_trip(
    server: ScriptedServer, redis_client: redis.Redis
) -> None:
    server.reply(Reply(200, GRANT))
    tokens = SharedTokenProvider(redis_client, f"{server.url}/token", "id", "secret", None)
    assert tokens.token() == "a1"
    assert 1_790_000 < redis_client.pttl(KEY) <= 1_800_000

    redis_client.delete(KEY)  # only a Redis read could notice this

    assert tokens.token() == "a1"
    assert len(server.seen) == 1


def test_invalidate_drops_only_the_refused_token(
    server: ScriptedServer, redis_client: redis.Redis
) -> None:
    server.reply(Reply(200, GRANT))
    tokens = SharedTokenProvider(redis_client, f"{server.url}/token", "id", "secret", None)
    tokens.token()

    tokens.invalidate("some-older-token")  # another worker's stale 401
    assert redis_client.get(KEY) is not None
    tokens.invalidate("a1")
    assert redis_client.get(KEY) is None


def test_waiters_take_the_refreshers_token_or_give_up_in_bounded_time(
    server: ScriptedServer, redis_client: redis.Redis
) -> None:
    redis_client.set(f"{KEY}:lock", "another-refresher", px=10_000)
    tokens = SharedTokenProvider(
        redis_client, f"{server.url}/token", "id", "secret", None, wait_seconds=0.4
    )

    started = time.monotonic()
    with pytest.raises(KorusTransientError, match="waiting"):
        tokens.token()
    assert 0.4 <= time.monotonic() - started < 1.5

    now = time.time()
    published = CachedToken("from-the-other", expires_at=now + 600, refresh_at=now + 500)
    threading.Timer(0.1, lambda: redis_client.set(KEY, published.to_json())).start()
    assert tokens.token() == "from-the-other"
    assert server.seen == []  # never asked the endpoint while someone else held the lock


def test_static_provider_and_from_settings(redis_client: redis.Redis) -> None:
    static = StaticTokenProvider("tok")
    static.invalidate("tok")
    assert static.token() == "tok"

    redis_url, base_url = "redis://127.0.0.1:6379/0", "http://korus.test/"
    with_token = Settings(
        redis_url=redis_url, korus_base_url=base_url, korus_token="tok", korus_language="fr"
    )
    shared = Settings(
        redis_url=redis_url,
        korus_base_url=base_url,
        korus_token=None,  # the session's environment sets a placeholder KORUS_TOKEN
        korus_client_id="id",
        korus_client_secret="secret",
        korus_token_url="http://korus.test/token",
    )

    client = KorusClient.from_settings(with_token, redis_client)
    assert isinstance(client.transport.tokens, StaticTokenProvider)
    assert client.transport.language == "fr"
    assert client.transport.base_url == "http://korus.test"
    assert client.transport.timeout == (3.05, 20.0)
    assert isinstance(
        KorusClient.from_settings(shared, redis_client).transport.tokens, SharedTokenProvider
    )
