"""The baseline of pipeline_throughput: a raw Celery chain with the hops and messages of a
booking, each task doing nothing but send the next message(s).

Same broker, queues, routes, priorities, acks_late and prefetch as the real app (its
configuration is `worker.celeryconfig`); started as `celery -A bench.raw_app worker`.

Per booking, as in the real happy path (6 messages):
    reserve -> notify(reserved), payment -> create_order -> fetch_documents -> notify(completed)
The real `payment_succeeded` message comes from the web front; here the reserve task
sends it (same count, one poll delay less: the baseline is, if anything, favoured).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

DONE_KEY = "raw:done"

app = Celery("raw-baseline")
app.config_from_object("worker.celeryconfig")
app.conf.imports = ()
app.conf.beat_schedule = {}
app.conf.task_routes = {
    name: {"queue": queue, "priority": 5}
    for name, queue in (
        ("raw.reserve", "bookings"),
        ("raw.payment_succeeded", "payments"),
        ("raw.create_order", "payments"),
        ("raw.fetch_documents", "documents"),
        ("raw.notify", "callbacks"),
    )
}

_redis: Any = None


def _client() -> Any:
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(app.conf.broker_url)
    return _redis


@app.task(name="raw.reserve", acks_late=True)
def reserve(booking_id: str) -> None:
    app.send_task("raw.notify", args=[booking_id, "booking.reserved"])
    app.send_task("raw.payment_succeeded", args=[booking_id, f"evt_{booking_id}"])


@app.task(name="raw.payment_succeeded", acks_late=True)
def payment_succeeded(booking_id: str, event_id: str) -> None:
    app.send_task("raw.create_order", args=[booking_id])


@app.task(name="raw.create_order", acks_late=True)
def create_order(booking_id: str) -> None:
    app.send_task("raw.fetch_documents", args=[booking_id])


@app.task(name="raw.fetch_documents", acks_late=True)
def fetch_documents(booking_id: str) -> None:
    app.send_task("raw.notify", args=[booking_id, "booking.completed"])
    _client().incr(DONE_KEY)


@app.task(name="raw.notify", acks_late=True)
def notify(booking_id: str, event_type: str) -> None:
    return None
