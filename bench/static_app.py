"""The baseline app of webhook_ingress: the same gunicorn, answering a static 200 with the
body the real webhook route gives, reading (and discarding) the request body."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"outcome":"enqueued"}'


def application(environ: dict[str, Any],
                start_response: Callable[[str, list[tuple[str, str]]], Any]) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
