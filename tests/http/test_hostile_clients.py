"""Hostile clients against the real serving stack (gunicorn + gevent, deploy/gunicorn.conf.py).

Slow bodies, idle keep-alives, slow headers, oversized headers, truncated and absurd
chunked bodies, forged booking ids in signed events: the front keeps answering genuine
webhooks, never answers 5xx, and a refused request enqueues nothing. Every loop is bounded
in count and time; the socket counts are the issue's (256 + 256), all on loopback.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests

from tests.http.helpers import (
    WebServer,
    broker_messages,
    held_booking,
    payments_body,
    payments_headers,
    problem,
    web_env,
)
from worker.http.body import BODY_READ_SECONDS
from worker.processes import free_port

SLOW_BODIES = 256
IDLE_CONNECTIONS = 256
# Generous bounds: tests never assert on speed, only that an answer comes at all while
# the hostile connections are held (the target, 1 s, is printed).
GENUINE_BOUND_SECONDS = 10.0
HOSTILE_BOUND_SECONDS = BODY_READ_SECONDS + 20.0


def _address(web: WebServer) -> tuple[str, int]:
    parts = urlsplit(web.url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def _connect(web: WebServer) -> socket.socket:
    sock = socket.create_connection(_address(web), timeout=10)
    sock.setblocking(True)
    return sock


def _status_of(sock: socket.socket, deadline: float) -> int | None:
    """The status code of the response on `sock`; None when the server closed the
    connection without answering (or nothing came before `deadline`)."""
    data = b""
    while b"\r\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], min(remaining, 1.0))
        if not ready:
            continue
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return int(data.split(b" ", 2)[1])


def _signed_webhook(web: WebServer, booking_id: str, event_id: str) -> requests.Response:
    body = payments_body("payment.succeeded", booking_id=booking_id, payment_id=f"pay_{event_id}",
                         amount=4250, currency="eur")
    return requests.post(web.url + "/webhooks/payments", data=body,
                         headers=payments_headers(body, event_id), timeout=30)


@contextlib.contextmanager
def _sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.close()


def test_slow_bodies_and_idle_keepalives_do_not_starve_a_genuine_webhook(
    web: WebServer, db: redis.Redis
) -> None:
    booking = held_booking(db)
    before = len(broker_messages(db))
    head = (b"POST /webhooks/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{")
    with _sockets() as slow, _sockets() as idle:
        for _ in range(SLOW_BODIES):
            sock = _connect(web)
            sock.sendall(head)
            slow.append(sock)
        for _ in range(IDLE_CONNECTIONS):
            sock = _connect(web)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            idle.append(sock)
        # The idle ones got their answer and stay open (keep-alive), sending nothing more.
        deadline = time.monotonic() + GENUINE_BOUND_SECONDS
        assert [_status_of(s, deadline) for s in idle] == [200] * IDLE_CONNECTIONS

        stop = threading.Event()

        def trickle() -> None:  # one byte per slow socket per second, bounded by `stop`
            while not stop.wait(1.0):
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.send(b" ")

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            started = time.monotonic()
            genuine = _signed_webhook(web, booking.id, f"msg_hostile_{time.time_ns()}")
            elapsed = time.monotonic() - started
            health = requests.get(web.url + "/healthz", timeout=30)
            print(f"genuine webhook answered in {elapsed * 1000:.0f} ms while "
                  f"{SLOW_BODIES} bodies trickled and {IDLE_CONNECTIONS} keep-alives idled")
            assert genuine.status_code == 200 and genuine.json()["outcome"] == "enqueued"
            assert elapsed < GENUINE_BOUND_SECONDS
            assert health.status_code == 200

            # Every slow body meets the total read deadline: 408, never a 5xx, never held.
            deadline = time.monotonic() + HOSTILE_BOUND_SECONDS
            statuses = [_status_of(s, deadline) for s in slow]
        finally:
            stop.set()
            trickler.join(5)
    assert statuses == [408] * SLOW_BODIES
    assert len(broker_messages(db)) == before + 1  # the genuine one only


def _raw(web: WebServer, payload: bytes, *, close_write: bool = False,
         trickle_seconds: float = 0.0) -> int | None:
    """Send `payload` raw, optionally half-close, then read the status (None: closed)."""
    with _sockets() as opened:
        sock = _connect(web)
        opened.append(sock)
        sock.sendall(payload)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        return _status_of(sock, time.monotonic() + HOSTILE_BOUND_SECONDS + trickle_seconds)


def _post_head(extra: bytes) -> bytes:
    return (b"POST /webhooks/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + extra + b"\r\n")


HOSTILE_REQUESTS = {
    # Chunked body cut off mid-chunk: the server's reader fails, the app answers 400.
    "truncated_chunked": (_post_head(b"Transfer-Encoding: chunked\r\n") + b"40\r\n{\"type\":",
                          True, {400}),
    # A chunk size no body could have: nothing more comes, the read deadline ends it.
    "absurd_chunk_size": (_post_head(b"Transfer-Encoding: chunked\r\n")
                          + b"ffffffffffffffff\r\n{\"t", False, {408, 413}),
    "malformed_chunk_size": (_post_head(b"Transfer-Encoding: chunked\r\n")
                             + b"zz\r\n{}\r\n0\r\n\r\n", False, {400}),
    # Content-Length promises more than arrives before the client closes.
    "short_body": (_post_head(b"Content-Length: 100\r\n") + b"{\"type\":", True, {400}),
    # Headers that never end: disconnected at the header deadline (gunicorn's keepalive).
    "slow_headers": (b"POST /webhooks/payments HTTP/1.1\r\nHost: x\r\n", False, {None}),
    "oversized_header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000
                         + b"\r\n\r\n", False, {400, 431}),
    "too_many_headers": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                         + b"".join(b"X-H%d: v\r\n" % n for n in range(200)) + b"\r\n",
                         False, {400, 431}),
}


def test_truncated_absurd_and_oversized_requests_get_4xx_and_enqueue_nothing(
    web: WebServer, db: redis.Redis
) -> None:
    before = len(broker_messages(db))
    results: dict[str, int | None] = {}

    def run(name: str) -> None:
        payload, close_write, _ = HOSTILE_REQUESTS[name]
        results[name] = _raw(web, payload, close_write=close_write)

    threads = [threading.Thread(target=run, args=(name,)) for name in HOSTILE_REQUESTS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HOSTILE_BOUND_SECONDS + 10)

    for name, (_, _, expected) in HOSTILE_REQUESTS.items():
        assert results.get(name, "missing") in expected, (name, results.get(name, "missing"))
    assert len(broker_messages(db)) == before
    # The front still answers, and logged no error for any of them.
    assert requests.get(web.url + "/healthz", timeout=10).status_code == 200
    log = web.log()
    for marker in ("Traceback", " ERROR ", "[ERROR]", "[CRITICAL]"):
        assert marker not in log, log[-3000:]


def test_a_truncated_chunked_body_is_a_problem_document(web: WebServer) -> None:
    with _sockets() as opened:
        sock = _connect(web)
        opened.append(sock)
        sock.sendall(_post_head(b"Transfer-Encoding: chunked\r\n") + b"40\r\n{\"type\":")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        deadline = time.monotonic() + HOSTILE_BOUND_SECONDS
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], 1.0)
            if ready:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), received[:200]
    assert b"application/problem+json" in head
    assert b"/problems/unreadable-body" in body


@pytest.mark.parametrize("booking_id", ["bk_}x{y", "bk_0123\x00abc", "bk_" + "A" * 24, "x" * 300])
def test_a_signed_event_with_a_malformed_booking_id_touches_no_key_and_no_log(
    web: WebServer, db: redis.Redis, booking_id: str
) -> None:
    before = len(broker_messages(db))
    event_id = f"msg_badid_{time.time_ns()}"

    response = _signed_webhook(web, booking_id, event_id)

    assert response.status_code == 200, response.text
    assert response.json() == {"outcome": "ignored", "eventId": event_id,
                                "detail": "invalid_booking_id"}
    assert len(broker_messages(db)) == before
    assert not [k for k in db.scan_iter(count=1000) if "}x{" in k or "\x00" in k or event_id in k]
    assert "\x00" not in web.log() and "}x{" not in web.log()


def test_the_public_port_answers_404_for_metrics_without_the_token(web: WebServer) -> None:
    assert problem(requests.get(web.url + "/metrics", timeout=10), 404)


@pytest.fixture(scope="module")
def web_with_metrics_port(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WebServer, int]]:
    port = free_port()
    env = web_env(redis_url, METRICS_PORT=str(port), METRICS_TOKEN="")
    server = WebServer(env, Path(tmp_path_factory.mktemp("web-metrics")) / "gunicorn.log")
    server.start()
    # The listener is a child process of the gunicorn master: it may answer a little
    # after the public port does (bounded wait).
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield server, port
    server.stop()


def test_metrics_port_serves_every_workers_counts_and_the_public_port_does_not(
    web_with_metrics_port: tuple[WebServer, int],
) -> None:
    web, port = web_with_metrics_port
    for _ in range(4):  # spread over the workers
        requests.get(web.url + "/healthz", timeout=10)

    public = requests.get(web.url + "/metrics", timeout=10)
    private = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    other = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)

    assert public.status_code == 404
    assert private.status_code == 200 and other.status_code == 404
    healthz = [line for line in private.text.splitlines() if line.startswith(
        "booking_worker_http_requests_total{") and 'route="/healthz"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in healthz) >= 4
    assert "booking_worker_bookings{" in private.text
