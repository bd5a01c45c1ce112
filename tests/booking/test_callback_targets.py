"""Callback targets (worker.booking.callback_transport): what is refused, and that a
refused callback sends nothing, alerts, and is not retried. Real loopback receivers
record every request that reaches them."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from tests.factories import RecordingEnqueuer
from tests.ops.support import make_booking, make_context, ops_settings
from tests.support.receiver import HttpRecorder, recorder
from worker.booking import callback_transport, keys
from worker.booking.callback_transport import (
    TargetPolicy,
    TargetRefusedError,
    is_public,
    parse_target,
    resolve_checked,
)
from worker.booking.callbacks import deliver
from worker.booking.record import utcnow
from worker.booking.states import State

REFUSED_LITERALS = [
    "https://127.0.0.1/hooks",
    "https://127.9.9.9/hooks",
    "https://[::1]/hooks",
    "https://10.0.0.1/hooks",
    "https://172.16.5.4/hooks",
    "https://192.168.1.1/hooks",
    "https://169.254.169.254/latest/meta-data/",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "https://100.100.100.200/latest/meta-data/",  # CGNAT range (Alibaba metadata)
    "https://[::ffff:127.0.0.1]/hooks",
    "https://[::ffff:a9fe:a9fe]/hooks",  # mapped 169.254.169.254
    "https://[64:ff9b::a9fe:a9fe]/hooks",  # NAT64 of the metadata address
    "https://[2002:7f00:1::1]/hooks",  # 6to4 of 127.0.0.1
    "https://[::127.0.0.1]/hooks",  # IPv4-compatible loopback
    "https://[fe80::1]/hooks",
    "https://0.0.0.0/hooks",
    "https://[::]/hooks",
    "https://224.0.0.1/hooks",
    "https://[ff02::1]/hooks",
    "https://255.255.255.255/hooks",
    "https://192.0.2.10/hooks",  # documentation range
]


@pytest.mark.parametrize("url", REFUSED_LITERALS)
def test_non_public_address_literals_are_refused(url: str) -> None:
    with pytest.raises(TargetRefusedError, match="non-public"):
        parse_target(url, TargetPolicy())


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://shop.example/hooks", "https"),
        ("ftp://shop.example/hooks", "https"),
        ("https://user:pw@shop.example/hooks", "credentials"),
        ("https://user@shop.example/hooks", "credentials"),
        ("https://shop.example/ho\r\nX-Injected: 1", "control"),
        ("https://shop.example/a b", "spaces"),
        ("https://shop.example\\@evil.example/", "backslash"),
        ("https:///hooks", "no host"),
        ("https://shop.example:99999/", "parsed"),
        ("https://shöp.example/", "ASCII"),
    ],
)
def test_malformed_or_unsafe_urls_are_refused(url: str, why: str) -> None:
    with pytest.raises(TargetRefusedError, match=why):
        parse_target(url, TargetPolicy())


def test_public_https_targets_pass_and_http_only_when_allowed() -> None:
    target = parse_target("https://Shop.Example:8443/hooks?x=1", TargetPolicy())
    assert (target.host, target.port, target.path) == ("shop.example", 8443, "/hooks?x=1")
    assert target.host_header == "shop.example:8443"
    assert parse_target("http://shop.example/", TargetPolicy(allow_http=True)).port == 80
    assert is_public(callback_transport.ipaddress.ip_address("2606:4700::1111"))


def test_allowed_hosts_restrict_the_targets() -> None:
    policy = TargetPolicy.build(False, ["hooks.shop.example"], [])
    assert parse_target("https://hooks.shop.example/x", policy).host == "hooks.shop.example"
    with pytest.raises(TargetRefusedError, match="CALLBACK_ALLOWED_HOSTS"):
        parse_target("https://other.example/x", policy)


def test_a_name_with_any_private_answer_is_refused() -> None:
    target = parse_target("https://mixed.example/", TargetPolicy())

    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(TargetRefusedError, match=r"10\.0\.0\.7"):
        resolve_checked(target, TargetPolicy(), resolver)


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup() -> None:
    """`merchant.test` does not resolve on this machine: the request can only arrive if the
    transport connects to the address its own (injected) lookup checked."""
    with recorder() as merchant:
        port = int(merchant.url.rsplit(":", 1)[1])
        lookups: list[str] = []

        def resolver(host: str, port_: int) -> list[str]:
            lookups.append(host)
            return ["127.0.0.1"]

        policy = TargetPolicy.build(True, [], ["127.0.0.1/32"])
        answer = callback_transport.post(
            f"http://merchant.test:{port}/hooks", b"{}", {"content-type": "application/json"},
            policy=policy, timeout=5, resolver=resolver,
        )
        received = merchant.wait_for(1, timeout=5)
    assert answer.status == 200 and lookups == ["merchant.test"]
    assert received[0].headers["host"] == f"merchant.test:{port}"
    assert received[0].path == "/hooks"


# -- through deliver(): nothing sent, an alert, no retry ---------------------------------


@pytest.fixture
def merchant() -> Iterator[HttpRecorder]:
    with recorder() as running:
        yield running


def _context(redis_client: redis.Redis, redis_url: str, **settings: Any) -> Any:
    return make_context(redis_client, ops_settings(redis_url, callback_allow_http=True,
                                                   **settings), RecordingEnqueuer())


def _booking_with(ctx: Any, url: str) -> str:
    booking = make_booking(State.CANCELLED, now=utcnow(), callback_url=url)
    assert ctx.store.create(booking, reason="test")
    return booking.id


def test_refused_callback_targets_get_nothing_and_raise_an_alert(
    redis_client: redis.Redis, redis_url: str, merchant: HttpRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = merchant.url.rsplit(":", 1)[1]
    ctx = _context(redis_client, redis_url)
    targets = [
        f"http://127.0.0.1:{port}/hooks",
        f"http://[::1]:{port}/hooks",
        f"http://[::ffff:127.0.0.1]:{port}/hooks",
        f"http://localhost:{port}/hooks",  # a name that resolves to loopback
        "http://10.0.0.1/hooks",
        "http://169.254.169.254/latest/meta-data/",
    ]
    outcomes = []
    with caplog.at_level(logging.ERROR, logger="booking.alerts"):
        for url in targets:
            booking_id = _booking_with(ctx, url)
            outcomes.append(deliver(ctx, booking_id, "booking.cancelled"))  # no raise: no retry
            stored = redis_client.hget(keys.callbacks(booking_id), "booking.cancelled")
            assert json.loads(stored)["status"] == "refused"  # final: never retried
    assert outcomes == ["refused"] * len(targets)
    assert merchant.requests == []
    alerts = [r for r in caplog.records if getattr(r, "alert_kind", None) == "callback_refused"]
    assert len(alerts) == len(targets)


def test_a_redirect_is_not_followed(
    redis_client: redis.Redis, redis_url: str, merchant: HttpRecorder
) -> None:
    with recorder("127.0.0.2") as inner:
        merchant.status_for = lambda n: 302
        merchant.answer_headers = {"Location": inner.url + "/internal"}
        # The merchant's own address is exempt here; the redirect target is not, and
        # would not be followed anyway.
        ctx = _context(redis_client, redis_url, callback_allowed_networks=["127.0.0.1/32"])
        booking_id = _booking_with(ctx, merchant.url + "/hooks")

        # A 3xx is a failed attempt (retried later, as any non-2xx), never followed.
        assert deliver(ctx, booking_id, "booking.cancelled") == "retry scheduled"
        stored = json.loads(redis_client.hget(keys.callbacks(booking_id), "booking.cancelled"))
        assert stored["status"] == "retry" and "302" in stored["error"]
        assert len(merchant.wait_for(1, timeout=5)) == 1
        assert inner.requests == []
    merchant.answer_headers = {"Location": "http://10.0.0.1/"}
    other = _booking_with(ctx, merchant.url + "/hooks")
    assert deliver(ctx, other, "booking.cancelled") == "retry scheduled"
    assert len(merchant.requests) == 2


def test_an_exempt_network_is_delivered_to(
    redis_client: redis.Redis, redis_url: str, merchant: HttpRecorder
) -> None:
    ctx = _context(redis_client, redis_url, callback_allowed_networks=["127.0.0.0/8"])
    booking_id = _booking_with(ctx, merchant.url + "/hooks")

    assert deliver(ctx, booking_id, "booking.cancelled") == "delivered"
    assert len(merchant.wait_for(1, timeout=5)) == 1


# -- https: the checked address, the name verified by TLS ----------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for `merchant.test` (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
         cert, "-days", "1", "-subj", "/CN=merchant.test",
         "-addext", "subjectAltName=DNS:merchant.test"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@contextlib.contextmanager
def _tls_receiver(cert: str, key: str) -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hosts.append(self.headers.get("Host", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), hosts
    finally:
        server.shutdown()
        server.server_close()


def test_https_goes_to_the_checked_address_and_verifies_the_name(
    tls_files: tuple[str, str],
) -> None:
    cert, key = tls_files
    policy = TargetPolicy.build(False, [], ["127.0.0.1/32"])
    with _tls_receiver(cert, key) as (port, hosts):
        answer = callback_transport.post(
            f"https://merchant.test:{port}/hooks", b"{}", {}, policy=policy, timeout=5,
            resolver=lambda host, port_: ["127.0.0.1"], ca_certs=cert,
        )
        # The same server under another name: the certificate does not match, nothing sent.
        with pytest.raises(callback_transport.CallbackTransportError):
            callback_transport.post(
                f"https://other.test:{port}/hooks", b"{}", {}, policy=policy, timeout=5,
                resolver=lambda host, port_: ["127.0.0.1"], ca_certs=cert,
            )
    assert answer.status == 204
    assert hosts == [f"merchant.test:{port}"]
