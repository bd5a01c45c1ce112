"""The HTTP/1.1 request handler: framing, routing, auth, faults, Korus-shaped errors.

Guarantees:
- Keep-alive HTTP/1.1; each response goes out in ONE write with Content-Length (and
  TCP_NODELAY), so no Nagle/delayed-ACK stalls; no log line per request.
- Any request gets a Korus-shaped answer: malformed framing → 400/411/413, unknown path
  → 404, wrong method → 405 (unsupported methods too), bad JSON → 400; an unexpected
  exception is logged and answered 500 without a stack trace.
- Faults (see `faults.py`) are decided per call for Korus and token routes; every sleep
  happens here, outside the state lock, and ends early when the sandbox stops.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import socket
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from korus_sandbox.errors import ApiError, ViolationsError, error_body, reason, violations_body
from korus_sandbox.httpkit import Request, Response, Route, json_response
from korus_sandbox.routes_auth import check_bearer
from korus_sandbox.shapes import vary

if TYPE_CHECKING:
    from korus_sandbox.context import SandboxContext
    from korus_sandbox.server import SandboxHttpServer

logger = logging.getLogger("korus_sandbox")

MAX_BODY_BYTES = 1_000_000
_REQUEST_IDS = itertools.count(1)
_PROCESS_TAG = os.urandom(4).hex()


class _FramingError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _varied(ctx: SandboxContext, response: Response) -> Response:
    """A 2xx JSON answer in one of the tolerated variants (`--shapes varied`)."""
    if not 200 <= response.status < 300 or not response.body:
        return response
    with ctx.shapes_lock:  # one Random shared by the server threads
        payload = vary(json.loads(response.body), ctx.shapes_rng)
    varied = json_response(response.status, payload, response.content_type)
    varied.headers = response.headers
    return varied


def error_response(error: ApiError, path: str | None) -> Response:
    response = json_response(error.status, error_body(error.status, error.detail, path))
    response.headers.update(error.headers)
    return response


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KorusSandbox/1.0"
    disable_nagle_algorithm = True
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: SandboxHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by the stdlib parser (bad request line, unsupported method)."""
        status = 405 if code == 501 else code
        self.close_connection = True
        detail = message or reason(status)
        response = json_response(status, error_body(status, detail, None))
        self._send(response, head=getattr(self, "command", "") == "HEAD")

    # -- one request -----------------------------------------------------------------

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except _FramingError as error:
            self.close_connection = True
            self._send(error_response(ApiError(error.status, error.detail), None))
            return
        split = urlsplit(self.path)
        request = Request(
            self.command,
            split.path,
            parse_qs(split.query, keep_blank_values=True),
            self.headers,
            body,
        )
        ctx = self.server.context
        try:
            route, request.params = self.server.router.match(self.command, split.path)
        except ApiError as error:
            self._send(error_response(error, split.path))
            return
        if route.counted:
            ctx.state.count_call(route.name)
        decision = ctx.faults.decide(route.name) if route.korus else None
        if decision is None:
            self._send(self._run(route, request))
            return
        if decision.latency_seconds > 0:
            ctx.stopping.wait(decision.latency_seconds)
        kind = decision.kind
        if kind == "error":
            self._send(error_response(ApiError(503, "The service is unavailable."), split.path))
        elif kind == "rate_limit":
            headers = {}
            if decision.retry_after is not None:
                headers["Retry-After"] = str(math.ceil(decision.retry_after))
            self._send(error_response(ApiError(429, "Too many requests.", headers), split.path))
        elif kind == "timeout_before_commit":
            ctx.stopping.wait(decision.timeout_seconds)
            self._send(error_response(ApiError(504, "The upstream timed out."), split.path))
        elif kind == "drop_before_commit":
            self._drop()
        else:
            response = self._run(route, request)
            if kind == "timeout_after_commit":
                ctx.stopping.wait(decision.timeout_seconds)
                self._send(error_response(ApiError(504, "The upstream timed out."), split.path))
            elif kind == "drop":
                self._drop()
            else:
                self._send(response)

    def _run(self, route: Route, request: Request) -> Response:
        ctx = self.server.context
        try:
            if route.auth:
                check_bearer(ctx, request)
            response = route.handler(ctx, request)
            if ctx.shapes == "varied" and request.path.startswith("/v1/"):
                return _varied(ctx, response)
            return response
        except ApiError as error:
            return error_response(error, request.path)
        except ViolationsError as error:
            return json_response(422, violations_body(error.violations))
        except Exception:
            logger.exception("sandbox bug while serving %s %s", request.method, request.path)
            return error_response(ApiError(500, "Internal Server Error"), request.path)

    # -- framing ---------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        if not length_text.strip().isdigit():
            raise _FramingError(400, "Invalid Content-Length.")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise _FramingError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _FramingError(400, "Invalid chunked encoding.") from None
            if size == 0:
                break
            if size < 0 or len(body) + size > MAX_BODY_BYTES:
                raise _FramingError(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
            body += self.rfile.read(size)
            self.rfile.readline(1024)
        for _ in range(100):  # trailers, up to the blank line
            if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                break
        return bytes(body)

    def _send(self, response: Response, head: bool = False) -> None:
        headers = [
            f"HTTP/1.1 {response.status} {reason(response.status)}",
            f"Server: {self.server_version}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            f"X-Request-Id: {_PROCESS_TAG}-{next(_REQUEST_IDS)}",
        ]
        headers.extend(f"{name}: {value}" for name, value in response.headers.items())
        if self.close_connection:
            headers.append("Connection: close")
        payload = ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1", "replace")
        try:
            self.wfile.write(payload if head else payload + response.body)
        except OSError:
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection without any answer (the client sees a reset/EOF)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
