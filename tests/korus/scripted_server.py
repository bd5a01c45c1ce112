"""A tiny real HTTP server on loopback whose answers a test scripts, one per request.

Used for the transport's pure parts (headers, timeouts, error mapping) where the sandbox
would be indirect. Each request is recorded; each answer is a `Reply`, or `DROP` (close
the socket without answering), or `Reply(..., delay=s)` (answer late).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None


DROP = Reply(status=-1)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Script = Callable[[Seen], Reply]


class ScriptedServer:
    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._replies: list[Reply] = []
        self.default: Script = lambda _seen: Reply(200, {"ok": True})
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length))
                reply = outer._next(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply is DROP or reply.status < 0:
                    self.close_connection = True
                    self.connection.close()
                    return
                data = (
                    reply.raw
                    if reply.raw is not None
                    else (b"" if reply.body is None else json.dumps(reply.body).encode())
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/ld+json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (read timeout): nothing to do
                    self.close_connection = True

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(self, *replies: Reply) -> None:
        """Queue answers for the next requests; afterwards `default` answers."""
        with self._lock:
            self._replies.extend(replies)

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            if self._replies:
                return self._replies.pop(0)
        return self.default(seen)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
