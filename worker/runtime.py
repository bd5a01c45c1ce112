"""Per-process wiring: one Redis pool, one store, one Korus client, one service.

Built lazily on first use from the settings, so importing any module opens nothing.
"""

from __future__ import annotations

import functools
from datetime import timedelta

import redis

from worker.app import app
from worker.booking.context import StepContext
from worker.booking.deadlines import DeadlinePolicy
from worker.booking.effects import Enqueuer
from worker.booking.service import BookingService
from worker.booking.store import BookingStore
from worker.enqueue import CeleryEnqueuer
from worker.korus.client import KorusClient
from worker.liveness import ensure_heartbeat
from worker.redis_connect import connect
from worker.settings import Settings, load_settings


def deadline_policy(settings: Settings) -> DeadlinePolicy:
    return DeadlinePolicy(
        cancel_margin=timedelta(seconds=settings.cancel_margin_seconds),
        stuck_after=timedelta(seconds=settings.stuck_after_seconds),
        redrive_after=timedelta(seconds=settings.redrive_after_seconds),
        beneficiary_wait=timedelta(seconds=settings.beneficiary_wait_seconds),
    )


def enqueuer() -> Enqueuer:
    """Celery messages. The merchant callback of a state entered is recorded as expected
    by the store's write itself (the sweeper sends it if the message is lost)."""
    return CeleryEnqueuer(app)


def owner() -> str:
    """This worker process as claims name it; starts its liveness heartbeat once."""
    return ensure_heartbeat(store().heartbeat, load_settings().worker_heartbeat_seconds)


@functools.cache
def redis_client() -> redis.Redis:
    settings = load_settings()
    # One server or a Redis Cluster, by the URL's scheme (worker/redis_connect.py).
    return connect(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
    )


@functools.cache
def store() -> BookingStore:
    settings = load_settings()
    return BookingStore(
        redis_client(),
        retention_seconds=settings.retention_seconds,
        deadline_policy=deadline_policy(settings),
    )


@functools.cache
def service() -> BookingService:
    settings = load_settings()
    return BookingService(
        store(),
        enqueuer(),
        event_ttl_seconds=settings.webhook_dedupe_ttl_seconds,
        policy=settings.reservation_policy,
        redrive_after_seconds=settings.redrive_after_seconds,
    )


@functools.cache
def korus_client() -> KorusClient:
    return KorusClient.from_settings(load_settings(), redis_client())


@functools.cache
def step_context() -> StepContext:
    return StepContext(
        settings=load_settings(),
        redis=redis_client(),
        store=store(),
        enqueue=enqueuer(),
        korus_factory=korus_client,
        owner=owner,
    )
