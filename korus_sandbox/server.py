"""Start and stop a Korus sandbox: a real threaded HTTP/1.1 server on a TCP port.

    from korus_sandbox.server import SandboxConfig, start_sandbox
    with start_sandbox(SandboxConfig(port=0)) as sb:
        sb.url, sb.token_url

Guarantees: `start_sandbox` returns once the socket listens (port 0 picks a free one,
`url` tells which); requests are served by daemon threads; `stop()` (idempotent, also on
leaving the `with` block) stops accepting, closes kept-alive connections and cuts fault
sleeps short, so no thread keeps answering afterwards.
"""

from __future__ import annotations

import logging
import random
import socket
import socketserver
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from korus_sandbox import routes_admin, routes_auth, routes_booking, routes_catalog
from korus_sandbox.catalog import build_catalog
from korus_sandbox.context import SandboxContext
from korus_sandbox.documents import UrlSigner
from korus_sandbox.faults import FaultBook, FaultRule, parse_fault_spec
from korus_sandbox.handler import SandboxHandler
from korus_sandbox.httpkit import Route, Router
from korus_sandbox.shapes import SHAPES
from korus_sandbox.state import RuntimeConfig, SandboxState

logger = logging.getLogger("korus_sandbox")

ROUTES: list[Route] = [
    *routes_auth.ROUTES,
    *routes_catalog.ROUTES,
    *routes_booking.ROUTES,
    *routes_admin.ROUTES,
]
# What `/_sandbox/calls` counts and fault rules may name.
KORUS_ENDPOINTS: frozenset[str] = frozenset(route.name for route in ROUTES if route.korus)

FaultInput = FaultRule | str | Mapping[str, Any]


@dataclass
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 0
    hold_seconds: float = 900.0
    client_id: str = "sandbox"
    client_secret: str = "sandbox"  # noqa: S105 (the documented sandbox credential)
    token_lifetime_seconds: float = 1800.0
    documents_delay_seconds: float = 10.0
    seed: int = 0
    # Rules, `--fault` specs ("ENDPOINT:key=value,...") or `PUT /_sandbox/faults` bodies.
    faults: list[FaultInput] = field(default_factory=list)
    document_url_lifetime_seconds: float = 1800.0
    # "documented" (the shapes of korus-examples/) or "varied" (see shapes.py).
    shapes: str = "documented"


def _rule(fault: FaultInput) -> FaultRule:
    if isinstance(fault, FaultRule):
        return fault
    if isinstance(fault, str):
        return parse_fault_spec(fault)
    return FaultRule.from_mapping(fault)


class SandboxHttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its open connections, so stopping closes them."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], context: SandboxContext, router: Router):
        self.context = context
        self.router = router
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SandboxHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is normal here; log it quietly."""
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class Sandbox:
    """A running sandbox. `url` is `http://host:port`; `stop()` ends it."""

    def __init__(
        self, config: SandboxConfig, server: SandboxHttpServer, thread: threading.Thread
    ) -> None:
        self.config = config
        self.context = server.context
        self._server = server
        self._thread = thread
        self._stopped = False
        host, port = server.server_address[:2]
        # A wildcard listen address is shown as loopback, the address a local client uses.
        wildcard = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104
        shown = wildcard.get(str(host), str(host))
        self.port = int(port)
        self.url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
        self.token_url = self.url + routes_auth.TOKEN_PATH
        self.context.base_url = self.url

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.context.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_sandbox(config: SandboxConfig | None = None) -> Sandbox:
    """Listen on `config.host:config.port` and serve in a background daemon thread."""
    config = config if config is not None else SandboxConfig()
    if config.shapes not in SHAPES:
        raise ValueError(f"shapes must be one of {', '.join(SHAPES)}, not {config.shapes!r}")
    runtime = RuntimeConfig(
        hold_seconds=config.hold_seconds,
        token_lifetime_seconds=config.token_lifetime_seconds,
        documents_delay_seconds=config.documents_delay_seconds,
        document_url_lifetime_seconds=config.document_url_lifetime_seconds,
        client_id=config.client_id,
        client_secret=config.client_secret,
    )
    faults = FaultBook(config.seed, set(KORUS_ENDPOINTS))
    for fault in config.faults:
        faults.set(_rule(fault))
    context = SandboxContext(
        state=SandboxState(build_catalog(config.seed), runtime),
        faults=faults,
        signer=UrlSigner(),
        shapes=config.shapes,
        shapes_rng=random.Random(config.seed),
    )
    server = SandboxHttpServer((config.host, config.port), context, Router(ROUTES))
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"korus-sandbox-{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return Sandbox(config, server, thread)
