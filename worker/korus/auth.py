"""Access tokens for the Korus API: a static token, or one token shared by the fleet.

`SharedTokenProvider` keeps ONE token for every worker process in Redis:

- cached as JSON under `key_prefix`, with a Redis TTL equal to the token's lifetime;
- refreshed `refresh_margin_seconds` before it lapses, by one refresher at a time (a short
  `SET NX PX` lock holding a value unique to the refresher, released by compare-and-delete);
  while the refresh runs, the others keep using the old, still valid token, or, if there
  is none, poll the cache for a bounded time and then raise `KorusTransientError`;
- copied into the process, so a fresh token costs no Redis round trip per call;
- `invalidate(token)` deletes the cached token only if it is still that token, so N workers
  hitting a 401 with the same token cause one refresh, not N.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import redis
import requests

from worker.korus.errors import KorusAuthError, KorusTransientError
from worker.korus.transport import (
    environment_settings,
    error_from_exception,
    leased_session,
    parse_retry_after,
)

if TYPE_CHECKING:
    from worker.settings import Settings

CACHE_KEY = "bw:korus:token"  # the fleet's shared token (and `:lock`, its refresh lock)

# Compare-and-delete of the refresh lock: only its holder may release it.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Compare-and-delete of the cached token: only if it still holds the refused token.
_INVALIDATE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, cached = pcall(cjson.decode, raw)
if (not ok) or type(cached) ~= 'table' or cached['access_token'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class TokenProvider(Protocol):
    def token(self) -> str:
        """A bearer token believed valid now."""
        ...

    def invalidate(self, token: str) -> None:
        """The API refused `token` (401): forget it if it is still the current one."""
        ...


class StaticTokenProvider:
    """A fixed token (KORUS_TOKEN): nothing to refresh; a 401 ends as KorusAuthError."""

    def __init__(self, token: str) -> None:
        self._token = token

    def token(self) -> str:
        return self._token

    def invalidate(self, token: str) -> None:
        return None


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_at: float
    # When to start refreshing: the margin before expiry, but at most half the lifetime
    # (short-lived tokens, as the sandbox can issue, would otherwise always look stale).
    refresh_at: float
    refresh_token: str | None = None
    refresh_expires_at: float | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, raw: str) -> CachedToken | None:
        try:
            data = json.loads(raw)
            return cls(
                access_token=str(data["access_token"]),
                expires_at=float(data["expires_at"]),
                refresh_at=float(data["refresh_at"]),
                refresh_token=data.get("refresh_token"),
                refresh_expires_at=data.get("refresh_expires_at"),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def fresh(self, now: float) -> bool:
        return now < self.refresh_at

    def valid_for(self, now: float) -> float:
        return self.expires_at - now

    def refresh_usable(self, now: float) -> bool:
        return bool(self.refresh_token) and (self.refresh_expires_at or 0.0) - now > 5.0


class SharedTokenProvider:
    """One client-credentials token for the whole fleet, through Redis (see module doc)."""

    def __init__(
        self,
        redis_client: redis.Redis,
        token_url: str,
        client_id: str,
        client_secret: str,
        session: requests.Session | None = None,
        key_prefix: str = CACHE_KEY,
        refresh_margin_seconds: float = 120.0,
        *,
        timeout: tuple[float, float] = (3.05, 10.0),
        wait_seconds: float = 10.0,
        poll_interval_seconds: float = 0.05,
    ) -> None:
        self._redis = redis_client
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session
        self.cache_key = key_prefix
        self.lock_key = f"{key_prefix}:lock"
        self._margin = refresh_margin_seconds
        self._timeout = timeout
        self._wait = wait_seconds
        self._poll = poll_interval_seconds
        # The lock outlives one token request (connect + read timeout) so a slow refresher
        # is not joined by a second one; it lapses on its own if the refresher dies.
        self._lock_ms = int((sum(timeout) + 2.0) * 1000)
        self._local: CachedToken | None = None
        self._local_guard = threading.Lock()
        self._release = redis_client.register_script(_RELEASE_LOCK)
        self._invalidate = redis_client.register_script(_INVALIDATE)

    # -- public ---------------------------------------------------------------------

    def token(self) -> str:
        now = time.time()
        local = self._local
        if local is not None and local.fresh(now):
            return local.access_token
        try:
            return self._token_from_fleet()
        except redis.RedisError as error:
            raise KorusTransientError(f"token cache unavailable: {error}") from error

    def invalidate(self, token: str) -> None:
        with self._local_guard:
            if self._local is not None and self._local.access_token == token:
                self._local = None
        try:
            self._invalidate(keys=[self.cache_key], args=[token])
        except redis.RedisError as error:
            raise KorusTransientError(f"token cache unavailable: {error}") from error

    # -- fleet cache ----------------------------------------------------------------

    def _cached(self) -> CachedToken | None:
        raw = self._redis.get(self.cache_key)
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return CachedToken.from_json(text)

    def _remember(self, cached: CachedToken) -> str:
        with self._local_guard:
            self._local = cached
        return cached.access_token

    def _token_from_fleet(self) -> str:
        deadline = time.monotonic() + self._wait
        while True:
            now = time.time()
            cached = self._cached()
            if cached is not None and cached.fresh(now):
                return self._remember(cached)
            owner = uuid.uuid4().hex
            if self._redis.set(self.lock_key, owner, nx=True, px=self._lock_ms):
                try:
                    return self._refresh_as_owner()
                finally:
                    self._release(keys=[self.lock_key], args=[owner])
            # Someone else refreshes. A token still valid for a few seconds is usable
            # meanwhile; only without one do we wait.
            if cached is not None and cached.valid_for(now) > 5.0:
                return cached.access_token
            if time.monotonic() >= deadline:
                raise KorusTransientError(
                    f"no Korus token after waiting {self._wait:.0f}s for another refresher",
                    path=self._token_url,
                )
            time.sleep(self._poll)

    def _refresh_as_owner(self) -> str:
        now = time.time()
        cached = self._cached()  # another refresher may have finished just before us
        if cached is not None and cached.fresh(now):
            return self._remember(cached)
        fresh: CachedToken | None = None
        if cached is not None and cached.refresh_usable(now):
            assert cached.refresh_token is not None
            fresh = self._request_token(
                {"grant_type": "refresh_token", "refresh_token": cached.refresh_token},
                fallback_ok=True,
            )
        if fresh is None:
            fresh = self._request_token({"grant_type": "client_credentials"}, fallback_ok=False)
            assert fresh is not None
        lifetime_ms = max(1, int((fresh.expires_at - time.time()) * 1000))
        self._redis.set(self.cache_key, fresh.to_json(), px=lifetime_ms)
        return self._remember(fresh)

    # -- token endpoint -------------------------------------------------------------

    def _request_token(self, grant: dict[str, str], *, fallback_ok: bool) -> CachedToken | None:
        """POST the token endpoint. With `fallback_ok`, a 4xx returns None (try another grant)."""
        form = {**grant, "client_id": self._client_id, "client_secret": self._client_secret}
        lease = (
            contextlib.nullcontext(self._session) if self._session is not None else leased_session()
        )
        sent_at = time.time()
        try:
            with lease as session:
                response = session.post(
                    self._token_url,
                    data=form,
                    headers={"Accept": "application/json"},
                    timeout=self._timeout,
                    allow_redirects=False,
                    **environment_settings(self._token_url),
                )
        except requests.RequestException as error:
            # Asking for a token changes nothing that matters: any failure is transient.
            raise error_from_exception(
                error, "POST", self._token_url, state_changing=False
            ) from error
        status = response.status_code
        context: dict[str, Any] = {
            "method": "POST",
            "path": self._token_url,
            "status": status,
            "request_id": response.headers.get("X-Request-Id"),
            "body_excerpt": response.text[:500],
        }
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise KorusTransientError(
                "token endpoint unavailable", retry_after=retry_after, **context
            )
        if status >= 400 or status < 200:
            if fallback_ok:
                return None
            raise KorusAuthError(
                f"token endpoint refused the client: {_oauth_error(response)}", **context
            )
        try:
            data = response.json()
            lifetime = float(data.get("expires_in", 0))
            access = data["access_token"]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise KorusAuthError("token endpoint answered without a token", **context) from error
        if not isinstance(access, str) or not access or lifetime <= 0:
            raise KorusAuthError("token endpoint answered without a usable token", **context)
        refresh = data.get("refresh_token")
        refresh_lifetime = data.get("refresh_expires_in")
        return CachedToken(
            access_token=access,
            expires_at=sent_at + lifetime,
            refresh_at=sent_at + lifetime - min(self._margin, lifetime / 2),
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            refresh_expires_at=(
                sent_at + float(refresh_lifetime)
                if isinstance(refresh_lifetime, int | float) and refresh_lifetime > 0
                else None
            ),
        )


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        return str(body.get("error_description") or body.get("error") or body)
    return f"HTTP {response.status_code}"


__all__ = [
    "CachedToken",
    "SharedTokenProvider",
    "StaticTokenProvider",
    "TokenProvider",
]


def token_provider(
    settings: Settings, redis_client: redis.Redis, *, key_prefix: str = CACHE_KEY
) -> TokenProvider:
    """The configured token source: KORUS_TOKEN as it is, else a client-credentials token
    shared through Redis under `key_prefix`."""
    if settings.korus_token is not None:
        return StaticTokenProvider(settings.korus_token.get_secret_value())
    # Settings guarantees all three are set when KORUS_TOKEN is not.
    assert settings.korus_token_url and settings.korus_client_id
    assert settings.korus_client_secret is not None
    return SharedTokenProvider(
        redis_client,
        settings.korus_token_url,
        settings.korus_client_id,
        settings.korus_client_secret.get_secret_value(),
        key_prefix=key_prefix,
        timeout=(settings.korus_connect_timeout, settings.korus_read_timeout),
        wait_seconds=settings.korus_token_wait_seconds,
    )
