"""Reading request bodies: bounded, read once, JSON only.

Every body is read through `read_body`: a declared Content-Length over the limit is
refused before anything is read, and the read itself stops one byte past the limit, so a
chunked or lying client cannot make the process buffer more than `limit + 1` bytes.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from worker.http.problems import MALFORMED_JSON, TOO_LARGE, UNSUPPORTED_MEDIA, ApiProblem

# 256 KiB: a Stripe event is a few KiB, a booking request of 20 items with forms stays far
# below; anything larger is a mistake or an attack.
MAX_BODY_BYTES = 256 * 1024
_READ_CHUNK = 64 * 1024


def too_large(limit: int) -> ApiProblem:
    return ApiProblem(
        413,
        type=TOO_LARGE,
        title="Payload too large",
        detail=f"bodies are limited to {limit} bytes",
    )


def read_body(req: falcon.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, at most `limit` bytes (413 beyond, checked before and while reading)."""
    declared = req.content_length  # raises a 400 for a malformed Content-Length
    if declared is not None and declared > limit:
        raise too_large(limit)
    stream: Any = req.bounded_stream
    if declared is None and req.env.get("wsgi.input_terminated"):
        # A chunked body (no Content-Length): servers that end wsgi.input at the end of
        # the body (gunicorn) say so with this flag; Falcon's bounded_stream would read
        # nothing. The loop below still stops one byte past the limit.
        stream = req.stream
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise too_large(limit)
    return b"".join(chunks)


def require_json(req: falcon.Request, status: int = 415) -> None:
    """`status` (415; the webhooks contract says 400) unless the Content-Type is
    `application/json` (any parameters, any case)."""
    media = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise ApiProblem(
            status,
            type=UNSUPPORTED_MEDIA,
            title="Unsupported media type",
            detail="send the body as application/json",
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    """Strict JSON (UTF-8, no NaN/Infinity, no lone surrogates); 400 problem otherwise."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_constant=_reject_constant)
        # Lone surrogates (\\ud800) parse, but cannot be stored or logged as UTF-8.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError, UnicodeError):
        # ValueError covers JSONDecodeError and over-long integer literals; RecursionError
        # deeply nested arrays. The decoder's message may quote the body: not echoed.
        raise ApiProblem(
            400, type=MALFORMED_JSON, title="Malformed JSON", detail="the body is not valid JSON"
        ) from None
    return data
