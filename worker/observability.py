"""Sentry and logs: every line and event traceable to a booking, none carrying a customer.

- `init_sentry(settings, role)`: once per process (worker: `celeryd_init`, beat:
  `beat_init`, web: the app factory). CeleryIntegration with beat check-ins (Sentry
  Crons), `send_default_pii=False`, no request bodies, and `scrub` on every event,
  transaction and breadcrumb. Nothing happens when SENTRY_DSN is unset.
- `configure_logging(settings)`: one handler on the root logger whose records carry the
  current booking id and Celery task id (text or JSON lines), scrubbed like events
  (messages and tracebacks).
- `install()`: connects both to the Celery signals, and tags each task's log lines and
  Sentry scope with its booking id (the first argument of every booking task).

Frame local variables are not sent at all (`include_local_variables=False`): a task's
locals hold whole booking records. The scrubber drops values under sensitive keys (names,
emails, phones, every customer, beneficiary and ticket-form field: nationality, date and
place of birth, formData, tokens, secrets, Authorization, passwords, DSNs), masks whole
customer, beneficiary and formData structures inside strings (`customer={...}`,
`Beneficiary(...)`, `'formData': {...}` in reprs, JSON and validation errors), and masks
email-looking, phone-looking and bearer/JWT-looking text and `key=value` pairs of the
sensitive keys. It cannot recognise a bare name in free text: code must not put customer
names in messages (alerts carry ids only).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from importlib import metadata
from typing import Any

import sentry_sdk

from worker.settings import Settings

FILTERED = "[Filtered]"

# Compared with keys lower-cased and stripped of "_", "-" and spaces.
_SENSITIVE_KEY_PARTS = (
    "firstname", "lastname", "fullname", "surname", "givenname", "username",
    "email", "phone", "mobile", "customer", "beneficiar", "dateofbirth", "birthdate",
    "birthplace", "placeofbirth", "nationality", "formdata",
    "token", "secret", "authorization", "password", "passwd", "dsn", "cookie", "apikey",
    "signature", "credential",
)

_KEY_FRAGMENT = (
    r"first[_-]?name|last[_-]?name|full[_-]?name|sur[_-]?name|given[_-]?name|user[_-]?name"
    r"|e[_-]?mail|phone|mobile|customer|beneficiar\w*|date[_-]?of[_-]?birth|birth[_-]?date"
    r"|place[_-]?of[_-]?birth|birth[_-]?place|nationality|form[_-]?data"
    r"|token|secret|authorization|password|passwd|dsn|cookie|api[_-]?key|signature|credential"
)
# `key=value` / `"key": "value"` inside a string. A value opening a bracket is left alone:
# the pairs inside it are matched one by one (so `customer={'firstname': 'Ada'}` loses
# the name, not the structure).
_PAIR = re.compile(
    rf"""(?ix)
    (?P<key>(?P<q>["']?)[\w-]*(?:{_KEY_FRAGMENT})[\w-]*(?P=q))
    (?P<sep>\s*[:=]\s*)
    (?P<value>"[^"]*"|'[^']*'|(?![\[{{(]|\w+\()[^\s,;&)}}\]]+)
    """
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONES = (
    # International: +33 1 23 45 67 89, +1 (555) 123-4567, +33123456789
    re.compile(r"(?<![\w+])\+\d(?:[\s.()-]{0,2}\d){6,16}(?!\w)"),
    # National (0 then 9 digits, grouped in twos or not): 01 23 45 67 89, 0123456789
    re.compile(r"(?<![\w.:/+-])0\d(?:[\s.-]?\d{2}){4}(?![\w.:/-])"),
    # North American: (555) 123-4567, 555-123-4567
    re.compile(r"(?<![\w.:/+-])(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w.:/-])"),
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_SECRET_LITERALS = re.compile(r"\b(?:whsec|sk_live|sk_test|rk_live|rk_test)_[A-Za-z0-9+/=_]{6,}")


def is_sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    flat = key.lower().replace("_", "").replace("-", "").replace(" ", "")
    return any(part in flat for part in _SENSITIVE_KEY_PARTS)


# Where a whole customer / beneficiary / form structure starts inside a string: a key
# (`customer=`, `'beneficiaries': `, `"formData":`) or a model repr (`Customer(`).
_STRUCTURE = re.compile(
    r"""(?ix)
    (?:(?P<q>["']?)(?:customer|customer[_-]?in|beneficiar\w*|form[_-]?data|form[_-]?fields?)
       (?P=q)\s*[:=]\s*(?P<open>[\[{(]|\w+\())
    | (?P<model>\b(?:Customer|CustomerIn|Beneficiary|FormData|FormField)\()
    """
)
_CLOSING = {"(": ")", "[": "]", "{": "}"}


def _mask_structures(text: str) -> str:
    """Replace the inside of every customer/beneficiary/form structure by FILTERED (bracket
    matching is naive about brackets inside quotes: at worst it masks more)."""
    out: list[str] = []
    position = 0
    while True:
        match = _STRUCTURE.search(text, position)
        if match is None:
            break
        start = match.end()
        opener = text[start - 1]
        depth, end = 1, start
        stack = [_CLOSING[opener]]
        while end < len(text) and stack:
            char = text[end]
            if char in _CLOSING:
                stack.append(_CLOSING[char])
            elif char == stack[-1]:
                stack.pop()
            end += 1
        depth = len(stack)
        out.append(text[position:start])
        out.append(FILTERED)
        if depth == 0:
            out.append(text[end - 1])
            position = end
        else:
            position = len(text)  # unbalanced (cut text): mask to the end
    out.append(text[position:])
    return "".join(out)


def scrub_text(text: str) -> str:
    """Mask personal data and credentials inside free text."""
    # Credentials first: `Authorization: Bearer <token>` must lose the token, not the word.
    text = _mask_structures(text)
    text = _JWT.sub(FILTERED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", text)
    text = _PAIR.sub(lambda m: f"{m.group('key')}{m.group('sep')}{FILTERED}", text)
    text = _SECRET_LITERALS.sub(FILTERED, text)
    text = _EMAIL.sub("[email]", text)
    for pattern in _PHONES:
        text = pattern.sub("[phone]", text)
    return text


def scrub(value: Any, _depth: int = 0) -> Any:
    """A copy of a JSON-like value with sensitive entries masked (recursive)."""
    if _depth > 40:
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            key: (FILTERED if is_sensitive_key(key) and item not in (None, "", [], {})
                  else scrub(item, _depth + 1))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        # Header lists come as [name, value] pairs.
        if len(value) == 2 and is_sensitive_key(value[0]):
            return [value[0], FILTERED]
        return [scrub(item, _depth + 1) for item in value]
    return value


def before_send(event: Any, hint: Any) -> Any:
    return scrub(event)


def before_breadcrumb(crumb: Any, hint: Any) -> Any:
    return scrub(crumb)


# -- Sentry --------------------------------------------------------------------------

_sentry_role: str | None = None


def _release() -> str | None:
    try:
        return f"booking-worker@{metadata.version('booking-worker')}"
    except metadata.PackageNotFoundError:
        return None


def unmonitored_beat_entries(settings: Settings) -> list[str]:
    """Beat entries Sentry Crons cannot monitor (sub-minute intervals), as exact regexes."""
    from worker.celeryconfig import SWEEP_ENTRY, is_whole_minutes

    if is_whole_minutes(settings.sweep_interval_seconds):
        return []
    return [f"^{re.escape(SWEEP_ENTRY)}$"]


def init_sentry(settings: Settings, role: str) -> bool:
    """Start Sentry for this process (`role`: worker, beat, web). Once per process; a
    no-op returning False when SENTRY_DSN is unset."""
    global _sentry_role
    if _sentry_role is not None:
        return True
    if settings.sentry_dsn is None:
        return False
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.logging import ignore_logger

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.sentry_environment,
        release=_release(),
        send_default_pii=False,
        # A task's locals hold whole booking records (customer, beneficiaries, forms).
        include_local_variables=False,
        max_request_body_size="never",
        traces_sample_rate=settings.sentry_traces_sample_rate,
        before_send=before_send,
        before_send_transaction=before_send,
        before_breadcrumb=before_breadcrumb,
        integrations=[
            CeleryIntegration(
                monitor_beat_tasks=True,
                exclude_beat_tasks=unmonitored_beat_entries(settings),
            )
        ],
    )
    # alert() sends its own fingerprinted event; its log line must not make a second one.
    ignore_logger("booking.alerts")
    sentry_sdk.set_tag("role", role)
    _sentry_role = role
    return True


def shutdown_sentry(timeout: float = 5.0) -> None:
    """Flush pending events and stop the client (process exit, or between tests)."""
    global _sentry_role
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=timeout)
        sentry_sdk.get_global_scope().set_client(None)
    _sentry_role = None


# -- logs ------------------------------------------------------------------------------

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


# -- Celery wiring --------------------------------------------------------------------


def task_started(task_id: str | None, name: str | None, args: Any) -> list[contextvars.Token[Any]]:
    """Bind a task's ids to the log context and the Sentry scope; returns reset tokens."""
    booking_id = args[0] if name and name.startswith("booking.") and args and isinstance(
        args[0], str
    ) else None
    tokens = [_task_id.set(task_id), _task_name.set(name), _booking_id.set(booking_id)]
    scope = sentry_sdk.get_isolation_scope()
    if booking_id:
        scope.set_tag("booking_id", booking_id)
    if task_id:
        scope.set_tag("celery_task_id", task_id)
    return tokens


_running: dict[str, list[contextvars.Token[Any]]] = {}


def _on_setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    from worker.settings import load_settings

    configure_logging(load_settings(), loglevel or None)


def _on_worker_init(**_: Any) -> None:
    # celeryd_init runs before the pool forks: children inherit the client (its transport
    # thread restarts per process); worker_process_init covers pools that do not fork.
    from worker.settings import load_settings

    init_sentry(load_settings(), "worker")


def _on_beat_init(**_: Any) -> None:
    from worker.settings import load_settings

    init_sentry(load_settings(), "beat")


def _on_task_prerun(task_id: str | None = None, task: Any = None, args: Any = None,
                    **_: Any) -> None:
    if task_id:
        _running[task_id] = task_started(task_id, getattr(task, "name", None), args)


def _on_task_postrun(task_id: str | None = None, **_: Any) -> None:
    for token in reversed(_running.pop(task_id or "", [])):
        with contextlib.suppress(ValueError):  # set in another context: nothing to undo
            token.var.reset(token)


def _on_process_shutdown(**_: Any) -> None:
    sentry_sdk.flush(timeout=2)


def install() -> None:
    """Connect logging and Sentry to the Celery signals of worker and beat processes.

    Called by worker.app at import: connecting opens nothing; the handlers run when a
    worker or beat starts. (`setup_logging` having a receiver also stops Celery from
    configuring logging itself.)"""
    from celery import signals

    signals.setup_logging.connect(_on_setup_logging, weak=False)
    signals.celeryd_init.connect(_on_worker_init, weak=False)
    signals.worker_process_init.connect(_on_worker_init, weak=False)
    signals.beat_init.connect(_on_beat_init, weak=False)
    signals.task_prerun.connect(_on_task_prerun, weak=False)
    signals.task_postrun.connect(_on_task_postrun, weak=False)
    signals.worker_process_shutdown.connect(_on_process_shutdown, weak=False)
