"""Celery wiring: logging and Sentry connected to the signals of worker and beat.

Each task's log lines and Sentry scope are tagged with its booking id (the first
argument of every booking task) and its task id.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

import sentry_sdk

from worker.booking.task_names import TaskName
from worker.observability.logs import _booking_id, _task_id, _task_name, configure_logging
from worker.observability.sentry import init_sentry

_BOOKING_TASKS = frozenset(TaskName)


def task_started(task_id: str | None, name: str | None, args: Any) -> list[contextvars.Token[Any]]:
    """Bind a task's ids to the log context and the Sentry scope; returns reset tokens."""
    booking_id = args[0] if name in _BOOKING_TASKS and args and isinstance(
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
