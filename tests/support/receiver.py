"""A loopback HTTP server that records what is POSTed to it: merchant callbacks and
Sentry envelopes (decompressed and parsed), answering each request with a status the test
chooses (200 by default)."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes  # decompressed

    def json(self) -> Any:
        return json.loads(self.body)


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.lower().strip()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding in ("", "identity"):
        return body
    raise AssertionError(f"unsupported Content-Encoding {encoding!r}")


@dataclass
class HttpRecorder:
    """A loopback HTTP server that keeps every POST and answers `status_for(n)` to the
    n-th (0-based; 200 unless the test says otherwise)."""

    requests: list[Request] = field(default_factory=list)
    port: int = 0
    status_for: Callable[[int], int] = lambda n: 200
    # seconds to wait before answering the n-th request (0-based); default none
    delay_for: Callable[[int], float] = lambda n: 0.0
    # extra response headers (e.g. Location for a redirect)
    answer_headers: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> HttpRecorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = decompress(raw, self.headers.get("Content-Encoding", ""))
                with recorder._lock:
                    n = len(recorder.requests)
                    recorder.requests.append(
                        Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                delay = recorder.delay_for(n)
                if delay:
                    time.sleep(delay)
                self.send_response(recorder.status_for(n))
                for name, value in recorder.answer_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def sentry_dsn(self) -> str:
        return f"http://public@{self.host}:{self.port}/1"

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Request]:
        """The requests once there are `count` of them, or all there are after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.snapshot()) < count:
            time.sleep(0.05)
        return self.snapshot()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # Sentry: POST /api/1/envelope/
    def envelope_items(self) -> list[tuple[dict[str, Any], bytes]]:
        items = []
        for request in self.snapshot():
            if "/envelope/" in request.path:
                items.extend(parse_envelope(request.body))
        return items

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(p) for h, p in self.envelope_items() if h.get("type") == "event"]

    def check_ins(self) -> list[dict[str, Any]]:
        return [json.loads(p) for h, p in self.envelope_items() if h.get("type") == "check_in"]

    def raw_envelopes(self) -> bytes:
        return b"\n".join(r.body for r in self.snapshot() if "/envelope/" in r.path)

    def callbacks(self, booking_id: str) -> list[dict[str, Any]]:
        out = []
        for request in self.snapshot():
            if "/envelope/" in request.path:
                continue
            body = request.json()
            if body.get("data", {}).get("id") == booking_id:
                out.append(body)
        return out


def parse_envelope(body: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Items of a Sentry envelope: header line, then (item header, payload) pairs."""
    items: list[tuple[dict[str, Any], bytes]] = []
    _, _, rest = body.partition(b"\n")
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        length = header.get("length")
        if length is not None:
            payload, rest = rest[:length], rest[length + 1:]
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


@contextlib.contextmanager
def recorder(host: str = "127.0.0.1") -> Iterator[HttpRecorder]:
    server = HttpRecorder(host=host).start()
    try:
        yield server
    finally:
        server.stop()
