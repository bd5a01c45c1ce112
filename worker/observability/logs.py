"""Logs: one root handler whose lines carry the booking and task ids, scrubbed.

`configure_logging(settings)` installs it (text or JSON lines); messages and tracebacks
pass through `scrub_text`. `booking_context` binds a booking id outside a task.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

from worker.observability.scrub import scrub_text
from worker.settings import Settings

_booking_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("booking_id", default=None)
_task_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)
_task_name: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_name", default=None)


def current_booking_id() -> str | None:
    """The booking the current task or `booking_context` works on, if any."""
    return _booking_id.get()


@contextlib.contextmanager
def booking_context(booking_id: str | None) -> Iterator[None]:
    """Log lines inside carry this booking id (for work on one booking outside a task)."""
    token = _booking_id.set(booking_id)
    try:
        yield
    finally:
        _booking_id.reset(token)


class ContextFilter(logging.Filter):
    """Adds `booking_id`, `task_id` and `task_name` to every record (`-` when unknown).

    An explicit `extra={"booking_id": ...}` wins over the current task's booking."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.booking_id = getattr(record, "booking_id", None) or _booking_id.get() or "-"
        record.task_id = getattr(record, "task_id", None) or _task_id.get() or "-"
        record.task_name = getattr(record, "task_name", None) or _task_name.get() or "-"
        return True


TEXT_FORMAT = (
    "%(asctime)s %(levelname)s [%(processName)s] %(name)s "
    "booking=%(booking_id)s task=%(task_id)s: %(message)s"
)


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, scrubbed as a whole: tracebacks quote values too (a validation error
    quotes the record it refused)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, booking, task, process."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub_text(record.getMessage()),
            "booking_id": getattr(record, "booking_id", "-"),
            "task_id": getattr(record, "task_id", "-"),
            "task": getattr(record, "task_name", "-"),
            "process": record.processName,
        }
        kind = getattr(record, "alert_kind", None)
        if kind:
            data["alert_kind"] = kind
        if record.exc_info:
            data["exception"] = scrub_text(self.formatException(record.exc_info))
        return json.dumps(data, default=str)


def configure_logging(settings: Settings, level: int | str | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one stderr handler in our format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level or settings.log_level)
    return handler
