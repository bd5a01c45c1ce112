"""Reading request bodies: bounded in size and in time, read once, JSON only.

Every body is read through `read_body`: a declared Content-Length over the limit is
refused before anything is read, and the read itself stops one byte past the limit, so a
chunked or lying client cannot make the process buffer more than `limit + 1` bytes.

The whole read has one deadline (BODY_READ_SECONDS, total, not per byte): a client that
trickles its body, declares more than it sends, or announces an absurd chunk size is
answered 408 when it runs out, and a body the server cannot read (a connection closed
mid-body, a truncated or malformed chunked encoding) is answered 400 at once. Under the
production stack (gunicorn's gevent worker) the deadline is a `gevent.Timeout` around
the read, so it interrupts a read blocked on the socket.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import falcon

from worker.http.problems import (
    BODY_TIMEOUT,
    MALFORMED_JSON,
    TOO_LARGE,
    UNREADABLE_BODY,
    UNSUPPORTED_MEDIA,
    ApiProblem,
)

log = logging.getLogger("booking.http")

# 256 KiB: a Stripe event is a few KiB, a booking request of 20 items with forms stays far
# below; anything larger is a mistake or an attack.
MAX_BODY_BYTES = 256 * 1024
_READ_CHUNK = 64 * 1024
# A payment provider sends a few KiB at once; 10 s is far above any honest upload of
# MAX_BODY_BYTES and still short next to the provider's own delivery timeout.
BODY_READ_SECONDS = 10.0


class BodyTimeoutError(Exception):
    """The body did not arrive within the read deadline."""


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("socket"))


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[float]:
    """Interrupt the block after `seconds` (gevent), else let the caller check the
    returned monotonic deadline between reads (other servers, in-process tests)."""
    deadline = time.monotonic() + seconds
    if not _gevent_patched():
        yield deadline
        return
    import gevent

    timeout = gevent.Timeout(seconds, BodyTimeoutError)
    timeout.start()
    try:
        yield deadline
    finally:
        timeout.close()


def body_timeout(seconds: float) -> ApiProblem:
    return ApiProblem(
        408,
        type=BODY_TIMEOUT,
        title="Request body not received in time",
        detail=f"the whole body must arrive within {seconds:g} seconds",
    )


def unreadable_body() -> ApiProblem:
    return ApiProblem(
        400,
        type=UNREADABLE_BODY,
        title="Unreadable request body",
        detail="the body ended early or its transfer encoding is malformed",
    )


def too_large(limit: int) -> ApiProblem:
    return ApiProblem(
        413,
        type=TOO_LARGE,
        title="Payload too large",
        detail=f"bodies are limited to {limit} bytes",
    )


def read_body(
    req: falcon.Request, limit: int = MAX_BODY_BYTES, seconds: float = BODY_READ_SECONDS
) -> bytes:
    """The raw body, at most `limit` bytes (413 beyond, checked before and while reading),
    read within `seconds` in all (408 after), 400 when the body cannot be read."""
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
    try:
        with _deadline(seconds) as deadline:
            while size <= limit:
                chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if time.monotonic() > deadline:
                    raise BodyTimeoutError
    except BodyTimeoutError:
        log.info("request body not received within %gs (%d bytes read)", seconds, size)
        raise body_timeout(seconds) from None
    except ApiProblem:
        raise
    except Exception as error:
        # The server's body reader failed: the client closed mid-body (gunicorn's
        # NoMoreData, an OSError) or sent a malformed chunk (InvalidChunkSize,
        # ChunkMissingTerminator). The client's fault, never a 500.
        log.info("unreadable request body: %s", type(error).__name__)
        raise unreadable_body() from None
    if declared is not None and size < declared:
        raise unreadable_body()  # Content-Length promised more than arrived
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
