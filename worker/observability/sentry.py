"""Sentry: `init_sentry(settings, role)` once per process, every event scrubbed.

Worker: `celeryd_init`, beat: `beat_init`, web: the app factory. CeleryIntegration with
beat check-ins (Sentry Crons), `send_default_pii=False`, no request bodies, and `scrub`
on every event, transaction and breadcrumb; frame local variables are not sent at all
(`include_local_variables=False`: a task's locals hold whole booking records). Nothing
happens when SENTRY_DSN is unset.
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

import sentry_sdk

from worker.observability.scrub import scrub
from worker.settings import Settings


def before_send(event: Any, hint: Any) -> Any:
    return scrub(event)


def before_breadcrumb(crumb: Any, hint: Any) -> Any:
    return scrub(crumb)


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
