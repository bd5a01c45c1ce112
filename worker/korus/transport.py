"""HTTP transport for the Korus API: pooled sessions, timeouts, headers, error mapping.

Everything that touches the network goes through `Transport.request`, which always passes
the (connect, read) timeouts, so no call site can forget them. `raise_for_response` and
`error_from_exception` are the ONE place deciding which error of the tree a failure
becomes; in particular whether a state-changing request may have taken effect
(`KorusOutcomeUnknownError`) or certainly did not leave this process (`KorusNotSentError`).

The transport never retries, except the single token refresh on a 401: the Celery tasks
own the retry policy.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import json
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError

from worker.korus.errors import (
    KorusAuthError,
    KorusClientError,
    KorusError,
    KorusNotFoundError,
    KorusNotSentError,
    KorusOutcomeUnknownError,
    KorusRejectedError,
    KorusTransientError,
    Violation,
)

if TYPE_CHECKING:
    from worker.korus.auth import TokenProvider
    from worker.korus.stats import CallObserver

JSON_LD = "application/ld+json"
MERGE_PATCH = "application/merge-patch+json"
BODY_EXCERPT_CHARS = 500
STATE_CHANGING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# A query string's values: text, numbers, or a list for a repeated key (`product[]`).
Query = Mapping[str, str | int | list[str]]

# Idle sessions of this process. A requests.Session is not documented as thread-safe
# (its cookie jar and adapters are shared state), so no two threads or greenlets ever use
# one at the same time: each request leases a session for its own use and gives it back,
# which keeps its pooled connections for the next request. At most one session per
# concurrent caller exists (the pool's concurrency), whatever the pool: prefork (one
# caller per process), threads (one per thread), gevent (one per running greenlet, even
# though Celery spawns a new greenlet per task).
IDLE_SESSIONS_KEPT = 128
_sessions_lock = threading.Lock()
_idle_sessions: list[requests.Session] = []
_sessions_pid: int | None = None


def new_session() -> requests.Session:
    """A session with a pooled adapter and no urllib3 retries (retries belong to tasks)."""
    session = requests.Session()
    # The environment (proxies, CA bundle) is read once per origin (environment_settings)
    # and passed with each request: requests would re-read it, and ~/.netrc, on every call.
    session.trust_env = False
    # One caller at a time (see leased_session): 4 hosts at most (API, token endpoint,
    # document storage, sandbox), a couple of kept-alive connections to each.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=2, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@functools.lru_cache(maxsize=16)
def _environment_for(origin: str) -> tuple[tuple[tuple[str, str], ...], str | bool]:
    probe = requests.Session()  # trust_env: reads HTTPS_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE
    try:
        found = probe.merge_environment_settings(origin + "/", {}, None, None, None)
    finally:
        probe.close()
    verify = found["verify"]
    return tuple(sorted(found["proxies"].items())), True if verify is None else verify


def environment_settings(url: str) -> dict[str, Any]:
    """The proxies and TLS verification requests would take from the environment for
    `url` (NO_PROXY included), looked up once per origin: pass them to each request."""
    parts = urlsplit(url)
    proxies, verify = _environment_for(f"{parts.scheme}://{parts.netloc}")
    return {"proxies": dict(proxies), "verify": verify}


@contextlib.contextmanager
def leased_session() -> Iterator[requests.Session]:
    """A session that this thread or greenlet alone uses until the block ends.

    Reuses an idle session of this process (its connections stay alive), else makes one.
    A forked child never reuses its parent's sessions (their sockets are the parent's).
    """
    global _sessions_pid
    pid = os.getpid()
    with _sessions_lock:
        if _sessions_pid != pid:
            _idle_sessions.clear()  # the parent's, inherited by fork: never used here
            _sessions_pid = pid
        session = _idle_sessions.pop() if _idle_sessions else None
    if session is None:
        session = new_session()
    try:
        yield session
    finally:
        with _sessions_lock:
            keep = _sessions_pid == os.getpid() and len(_idle_sessions) < IDLE_SESSIONS_KEPT
            if keep:
                _idle_sessions.append(session)
        if not keep:
            session.close()


def idle_sessions() -> int:
    """How many sessions this process keeps for reuse (tests, diagnostics)."""
    with _sessions_lock:
        return len(_idle_sessions) if _sessions_pid == os.getpid() else 0


def _forget_sessions_in_child() -> None:
    # A lock held by another thread at fork time stays held forever in the child.
    global _sessions_lock, _idle_sessions, _sessions_pid
    _sessions_lock = threading.Lock()
    _idle_sessions = []
    _sessions_pid = None


os.register_at_fork(after_in_child=_forget_sessions_in_child)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _excerpt(response: requests.Response) -> str:
    try:
        return response.text[:BODY_EXCERPT_CHARS]
    except Exception:  # a body that cannot be decoded must not hide the real error
        return ""


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _violations(body: Any) -> list[Violation]:
    if not isinstance(body, dict):
        return []
    raw = body.get("violations")
    if not isinstance(raw, list):
        return []
    return [Violation.from_json(item) for item in raw if isinstance(item, dict)]


def _title(body: Any, status: int) -> str:
    if isinstance(body, dict):
        for key in ("detail", "title", "description", "error_description", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return f"HTTP {status}"


def _context(response: requests.Response, method: str, path: str) -> dict[str, Any]:
    """What every error of an answer carries: where, status, request id, body excerpt."""
    return {
        "method": method,
        "path": path,
        "status": response.status_code,
        "request_id": response.headers.get("X-Request-Id"),
        "body_excerpt": _excerpt(response),
    }


def raise_for_response(
    response: requests.Response, method: str, path: str, *, state_changing: bool
) -> None:
    """Raise the error of the tree for a non-2xx answer; return for 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    body = _json_or_none(response)
    context = _context(response, method, path)
    title = _title(body, status)
    if status == 429:
        # Refused by the rate limiter: not processed, even for a POST.
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise KorusTransientError(f"rate limited: {title}", retry_after=retry_after, **context)
    if status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if state_changing:
            raise KorusOutcomeUnknownError(
                f"server error, outcome unknown: {title}", retry_after=retry_after, **context
            )
        raise KorusTransientError(f"server error: {title}", retry_after=retry_after, **context)
    if status == 422:
        raise KorusRejectedError(f"rejected: {title}", violations=_violations(body), **context)
    if status == 404:
        raise KorusNotFoundError(f"not found: {title}", **context)
    if status in (401, 403):
        raise KorusAuthError(f"not authorised: {title}", **context)
    raise KorusClientError(f"unexpected answer: {title}", **context)


def _never_connected(error: BaseException) -> bool:
    """True when the exception proves no byte of the request reached the server."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.ConnectionError) and error.args:
        cause = error.args[0]
        # A fresh connection could not be made (refused, DNS, connect timeout).
        # NewConnectionError and NameResolutionError subclass ConnectTimeoutError.
        if isinstance(cause, MaxRetryError) and isinstance(cause.reason, ConnectTimeoutError):
            return True
    return False


_NOT_SENT_PROGRAMMING = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)


def error_from_exception(
    error: requests.RequestException, method: str, path: str, *, state_changing: bool
) -> KorusError:
    """Map a requests exception to the tree. Anything not proven unsent is 'maybe sent'."""
    context: dict[str, Any] = {"method": method, "path": path}
    kind = type(error).__name__
    if isinstance(error, _NOT_SENT_PROGRAMMING):
        return KorusClientError(f"invalid request ({kind}): {error}", **context)
    if _never_connected(error):
        return KorusNotSentError(f"could not connect ({kind}): {error}", **context)
    if not state_changing:
        return KorusTransientError(f"request failed ({kind}): {error}", **context)
    # Read timeout, reset/dropped connection (RemoteDisconnected, ProtocolError,
    # ChunkedEncodingError), or anything else after the request may have been written.
    return KorusOutcomeUnknownError(f"answer lost, outcome unknown ({kind}): {error}", **context)


class TransportOptions(TypedDict, total=False):
    """The keyword options of `Transport`, for what builds one (`KorusClient`)."""

    language: str
    connect_timeout: float
    read_timeout: float
    session: requests.Session | None
    observer: CallObserver | None


class Transport:
    """Sends one Korus request with auth, headers and timeouts; maps failures to errors."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        language: str = "en",
        connect_timeout: float = 3.05,
        read_timeout: float = 20.0,
        session: requests.Session | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.language = language
        self.timeout = (connect_timeout, read_timeout)
        self._session = session
        self.observer = observer

    def _lease(self) -> contextlib.AbstractContextManager[requests.Session]:
        if self._session is not None:
            return contextlib.nullcontext(self._session)
        return leased_session()

    def url(self, path: str) -> str:
        """`base_url` + path. An absolute link (a `view.next`) keeps only its path and
        query, so the bearer token is never sent to another host."""
        parts = urlsplit(path)
        relative = parts.path + (f"?{parts.query}" if parts.query else "")
        return f"{self.base_url}/{relative.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Query | None = None,
        body: Any = None,
        language: str | None = None,
    ) -> Any:
        """Send once (twice only after a 401 with a refreshed token); return parsed JSON.

        A 401 means the request was not processed, so repeating it, even a POST, is safe.
        `language` (a booking's language) is sent as Accept-Language instead of the
        client's default.
        """
        method = method.upper()
        token = self.tokens.token()
        language = language or self.language
        response = self._send(method, path, params, body, token, language)
        if response.status_code == 401:
            response.close()
            self.tokens.invalidate(token)
            fresh = self.tokens.token()
            if fresh != token:  # a static token would only be refused again
                response = self._send(method, path, params, body, fresh, language)
        return self._result(response, method, path)

    def _send(
        self,
        method: str,
        path: str,
        params: Query | None,
        body: Any,
        token: str,
        language: str,
    ) -> requests.Response:
        headers = {
            "Accept": JSON_LD,
            "Accept-Language": language,
            "Authorization": f"Bearer {token}",
        }
        data: bytes | None = None
        if body is not None or method in ("POST", "PATCH", "PUT"):
            headers["Content-Type"] = MERGE_PATCH if method == "PATCH" else JSON_LD
            data = json.dumps({} if body is None else body).encode()
        state_changing = method in STATE_CHANGING
        started = time.perf_counter()
        try:
            # The body is read before the session goes back (requests reads it unless
            # stream=True), so the response outlives the lease safely.
            url = self.url(path)
            with self._lease() as session:
                response = session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    # A redirected POST silently turns into a GET: never follow one.
                    allow_redirects=not state_changing,
                    **environment_settings(url),
                )
        except requests.RequestException as error:
            mapped = error_from_exception(error, method, path, state_changing=state_changing)
            self._observe(method, path, type(mapped).__name__, started)
            raise mapped from error
        self._observe(method, path, str(response.status_code), started)
        return response

    def _observe(self, method: str, path: str, outcome: str, started: float) -> None:
        if self.observer is not None:
            self.observer(method, path, outcome, time.perf_counter() - started)

    def _result(self, response: requests.Response, method: str, path: str) -> Any:
        state_changing = method in STATE_CHANGING
        raise_for_response(response, method, path, state_changing=state_changing)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:
            context = _context(response, method, path)
            if state_changing:
                # The server accepted the call; only its answer is unreadable.
                raise KorusOutcomeUnknownError("unreadable success answer", **context) from error
            raise KorusTransientError("unreadable answer", **context) from error
