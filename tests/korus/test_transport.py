"""The transport over real HTTP on loopback: headers, timeouts, and the error mapping."""

from __future__ import annotations

import json
import os
import time
from email.utils import formatdate

import pytest
import requests

from tests.factories import RotatingTokens
from tests.korus.conftest import static_client
from tests.korus.scripted_server import DROP, Reply, ScriptedServer
from tests.support.booking import CUSTOMER, KORUS_CUSTOMER
from tests.support.redis_server import free_port
from worker.korus import (
    RESERVATION_EXPIRED_CODE,
    KorusAuthError,
    KorusClient,
    KorusClientError,
    KorusNotFoundError,
    KorusNotSentError,
    KorusOutcomeUnknownError,
    KorusRejectedError,
    KorusTransientError,
    ReservationRequestItem,
    StaticTokenProvider,
    idle_sessions,
    leased_session,
)
from worker.korus.transport import parse_retry_after

ORDER = {"@id": "/v1/booking/orders/o1", "id": "o1", "status": "confirmed"}


def test_requests_carry_json_ld_headers_language_and_bearer(server: ScriptedServer) -> None:
    client = KorusClient(server.url, RotatingTokens(), language="fr")
    server.reply(Reply(200, ORDER), Reply(200, {"orders": [ORDER]}))
    server.reply(Reply(200, {"@id": "/d/1", "temporaryUrl": "http://x/d.pdf?Expires=1"}))

    client.get_order("o1")
    client.create_orders(["r1"], KORUS_CUSTOMER, "REF-1")
    client.get_document_url("/v1/booking/orders/o1", "d1")

    get, post, patch = server.seen
    for seen in (get, post, patch):
        assert seen.headers["Accept"] == "application/ld+json"
        assert seen.headers["Accept-Language"] == "fr"
        assert seen.headers["Authorization"] == "Bearer t1"
    assert (get.method, get.path) == ("GET", "/v1/booking/orders/o1")
    assert "Content-Type" not in get.headers
    assert post.headers["Content-Type"] == "application/ld+json"
    assert json.loads(post.body) == {
        "reservations": ["/v1/booking/reservations/r1"],
        "customer": CUSTOMER,
        "externalReference": "REF-1",
    }
    assert (patch.method, patch.path) == ("PATCH", "/v1/booking/orders/o1/documents/d1")
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert json.loads(patch.body) == {}


def test_read_timeout_is_transient_on_get_and_outcome_unknown_on_writes(
    server: ScriptedServer,
) -> None:
    client = KorusClient(server.url, RotatingTokens(), read_timeout=0.3)
    server.default = lambda _seen: Reply(200, ORDER, delay=1.0)

    started = time.monotonic()
    with pytest.raises(KorusTransientError) as on_get:
        client.get_order("o1")
    assert time.monotonic() - started < 0.9  # the timeout, not the server, ended the call
    assert not isinstance(on_get.value, KorusOutcomeUnknownError | KorusNotSentError)
    with pytest.raises(KorusOutcomeUnknownError):
        client.create_orders(["r1"], KORUS_CUSTOMER, "REF-1")
    with pytest.raises(KorusOutcomeUnknownError):
        client.get_document_url("o1", "d1")


def test_404_is_not_found_with_request_id_and_a_bounded_excerpt(server: ScriptedServer) -> None:
    body = {"status": 404, "title": "An error occurred", "detail": "Not Found" + "x" * 2000}
    server.reply(Reply(404, body, headers={"X-Request-Id": "req-42"}))

    with pytest.raises(KorusNotFoundError) as caught:
        static_client(server.url, "t").get_order("missing")

    error = caught.value
    assert (error.method, error.path, error.status) == ("GET", "/v1/booking/orders/missing", 404)
    assert error.request_id == "req-42"
    assert 0 < len(error.body_excerpt) <= 500
    assert "req-42" not in str(error) and "404" in str(error)


def test_422_carries_parsed_violations(server: ScriptedServer) -> None:
    violation = {
        "propertyPath": "reservations[0].expired",
        "message": "La réservation a expiré",
        "code": RESERVATION_EXPIRED_CODE,
    }
    server.reply(Reply(422, {"status": 422, "violations": [violation]}))

    with pytest.raises(KorusRejectedError) as caught:
        static_client(server.url, "t").create_orders(["r1"], KORUS_CUSTOMER, "REF-1")

    assert caught.value.status == 422
    assert caught.value.violations[0].code == RESERVATION_EXPIRED_CODE
    assert caught.value.reservation_expired


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("http-date+30", 30.0), (None, None)],
)
def test_429_is_plain_transient_with_retry_after(
    server: ScriptedServer, header: str | None, expected: float | None
) -> None:
    if header == "http-date+30":
        header = formatdate(time.time() + 30, usegmt=True)
    headers = {"Retry-After": header} if header else {}
    server.reply(Reply(429, {"title": "Too Many Requests"}, headers=headers))

    # A POST refused by the rate limiter was not processed: plain transient, not unknown.
    with pytest.raises(KorusTransientError) as caught:
        static_client(server.url, "t").create_orders(["r1"], KORUS_CUSTOMER, "REF-1")

    assert type(caught.value) is KorusTransientError
    assert caught.value.status == 429
    if expected is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(expected, abs=2.0)


def test_5xx_is_transient_on_get_and_outcome_unknown_on_post(server: ScriptedServer) -> None:
    server.default = lambda _seen: Reply(503, {"title": "Service Unavailable"})
    client = static_client(server.url, "t")

    with pytest.raises(KorusTransientError) as on_get:
        client.get_reservation("r1")
    assert type(on_get.value) is KorusTransientError and on_get.value.status == 503
    with pytest.raises(KorusOutcomeUnknownError) as on_post:
        client.reserve([ReservationRequestItem(offer="/o", quantity=1)])
    assert on_post.value.status == 503


@pytest.mark.parametrize(("status", "error"), [(400, KorusClientError), (403, KorusAuthError)])
def test_other_4xx_are_permanent_without_refresh(
    server: ScriptedServer, status: int, error: type[Exception]
) -> None:
    server.reply(Reply(status, {"detail": "no"}))
    tokens = RotatingTokens()

    with pytest.raises(error):
        KorusClient(server.url, tokens).get_order("o1")

    assert len(server.seen) == 1 and tokens.invalidated == []


def test_401_invalidates_and_retries_once_with_a_fresh_token(server: ScriptedServer) -> None:
    server.reply(Reply(401, {"detail": "expired token"}), Reply(201, {"orders": [ORDER]}))
    tokens = RotatingTokens()

    result = KorusClient(server.url, tokens).create_orders(["r1"], KORUS_CUSTOMER, "REF-1")

    assert [order.id for order in result.orders] == ["o1"]
    assert tokens.invalidated == ["t1"]
    assert [seen.headers["Authorization"] for seen in server.seen] == ["Bearer t1", "Bearer t2"]
    assert server.seen[0].body == server.seen[1].body


def test_a_second_401_is_an_auth_error(server: ScriptedServer) -> None:
    server.default = lambda _seen: Reply(401, {"detail": "nope"})

    with pytest.raises(KorusAuthError) as caught:
        KorusClient(server.url, RotatingTokens()).get_order("o1")

    assert caught.value.status == 401
    assert len(server.seen) == 2


def test_a_refused_static_token_is_not_sent_twice(server: ScriptedServer) -> None:
    server.default = lambda _seen: Reply(401, {"detail": "nope"})

    with pytest.raises(KorusAuthError):
        static_client(server.url, "t").get_order("o1")

    assert len(server.seen) == 1


def test_connection_refused_is_not_sent() -> None:
    client = static_client(f"http://127.0.0.1:{free_port()}", "t")  # nothing listens there

    with pytest.raises(KorusNotSentError):
        client.create_orders(["r1"], KORUS_CUSTOMER, "REF-1")
    with pytest.raises(KorusNotSentError):
        client.get_order("o1")


def test_a_dropped_connection_is_outcome_unknown_for_writes(server: ScriptedServer) -> None:
    server.default = lambda _seen: DROP
    client = static_client(server.url, "t")

    with pytest.raises(KorusOutcomeUnknownError):
        client.create_orders(["r1"], KORUS_CUSTOMER, "REF-1")
    with pytest.raises(KorusTransientError) as on_get:
        client.get_order("o1")
    assert not isinstance(on_get.value, KorusOutcomeUnknownError | KorusNotSentError)


def test_an_unreadable_success_of_a_write_is_outcome_unknown(server: ScriptedServer) -> None:
    server.reply(Reply(200, raw=b"<html>proxy</html>"), Reply(200, {"orders": "not a list"}))
    server.reply(Reply(200, raw=b"<html>proxy</html>"))
    client = static_client(server.url, "t")

    with pytest.raises(KorusOutcomeUnknownError):
        client.create_orders(["r1"], KORUS_CUSTOMER, "REF-1")
    with pytest.raises(KorusOutcomeUnknownError):
        client.create_orders(["r1"], KORUS_CUSTOMER, "REF-1")
    with pytest.raises(KorusTransientError):
        client.get_order("o1")


@pytest.mark.parametrize("reference", ["", "x" * 51])
def test_bad_external_reference_is_refused_before_sending(
    server: ScriptedServer, reference: str
) -> None:
    with pytest.raises(ValueError, match="externalReference"):
        static_client(server.url, "t").create_orders(["r1"], KORUS_CUSTOMER, reference)
    assert server.seen == []


def test_ids_and_iris_address_the_same_resource(server: ScriptedServer) -> None:
    client = static_client(server.url, "t")
    server.default = lambda _seen: Reply(200, ORDER)

    client.get_order("o1")
    client.get_order("/v1/booking/orders/o1")
    client.get_order("/v1/booking/orders/o%2F1?x=1")  # one segment, query dropped
    with pytest.raises(ValueError, match="not a Korus id"):
        client.get_order("..")  # an id cannot climb out of its path

    assert [seen.path for seen in server.seen] == [
        "/v1/booking/orders/o1",
        "/v1/booking/orders/o1",
        "/v1/booking/orders/o%252F1",
    ]


def test_next_page_links_never_leave_the_api_host(server: ScriptedServer) -> None:
    elsewhere = f"http://127.0.0.1:{free_port()}/v1/booking/orders?external_reference=R&page=2"
    server.reply(
        Reply(200, {"member": [ORDER], "totalItems": 2, "view": {"next": elsewhere}}),
        Reply(200, {"member": [{**ORDER, "id": "o2"}], "totalItems": 2, "view": {}}),
    )

    orders = static_client(server.url, "t").find_orders("R")

    assert [order.id for order in orders] == ["o1", "o2"]
    assert server.seen[0].path == "/v1/booking/orders?itemsPerPage=50&external_reference=R"
    assert server.seen[1].path == "/v1/booking/orders?external_reference=R&page=2"


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(formatdate(now + 45, usegmt=True), now=now) == 45.0
    assert parse_retry_after(formatdate(now - 45, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("nan", now=now) is None
    assert parse_retry_after(None) is None


def test_a_leased_session_is_reused_and_never_crosses_a_fork() -> None:
    with leased_session() as session:
        adapter = session.get_adapter("https://api.korusticket.com")
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        assert adapter.max_retries.total == 0
    with leased_session() as again:
        assert again is session  # given back, kept alive, handed out again

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's pooled sockets
        os.close(read_end)
        with leased_session() as child_session:
            fresh = child_session is not session
        os.write(write_end, b"1" if fresh else b"0")
        os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 1)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert answer == b"1"


def test_concurrent_calls_never_share_a_session_and_reuse_them_after(
    server: ScriptedServer,
) -> None:
    """Threads (or greenlets) calling at once each get a session of their own; once done,
    the sessions are kept for the next calls instead of opening new connections."""
    import threading

    threads = 12
    server.default = lambda _seen: Reply(200, {"ok": True}, delay=0.2)
    client = static_client(server.url, "t")
    users: dict[int, int] = {}
    overlap: list[int] = []
    guard = threading.Lock()
    original = requests.Session.request

    def watched(self: requests.Session, *args: object, **kwargs: object) -> requests.Response:
        with guard:
            users[id(self)] = users.get(id(self), 0) + 1
            if users[id(self)] > 1:
                overlap.append(id(self))
        try:
            return original(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            with guard:
                users[id(self)] -= 1

    requests.Session.request = watched  # type: ignore[method-assign]
    try:
        for _ in range(2):
            barrier = threading.Barrier(threads)

            def call(barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                client.transport.request("GET", "/v1/ping")

            pool = [threading.Thread(target=call) for _ in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join(30)
    finally:
        requests.Session.request = original  # type: ignore[method-assign]
    assert overlap == []
    assert len(users) >= 2  # the calls really ran side by side on several sessions
    assert len(users) <= threads  # the second round reused the first round's sessions
    assert idle_sessions() >= len(users) - 1


def test_proxies_from_the_environment_are_honoured_though_read_once(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sessions do not re-read the environment on each call (trust_env is off), yet a
    proxy set in the environment still carries the calls, and NO_PROXY still applies."""
    from worker.korus import transport

    transport._environment_for.cache_clear()
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.setenv("NO_PROXY", "direct.invalid")
    try:
        KorusClient("http://korus.invalid", StaticTokenProvider("t")).transport.request(
            "GET", "/v1/ping"
        )
        assert server.seen[-1].path == "http://korus.invalid/v1/ping"  # sent to the proxy
        with pytest.raises(KorusNotSentError):  # NO_PROXY: straight to a host that is not
            KorusClient("http://direct.invalid", StaticTokenProvider("t"),
                        connect_timeout=1).transport.request("GET", "/v1/ping")
    finally:
        transport._environment_for.cache_clear()
