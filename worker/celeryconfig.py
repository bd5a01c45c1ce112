"""Celery settings, derived from `worker.settings` (imported lazily by worker.app).

Why these values:
- acks_late + reject_on_worker_lost: a message is acknowledged only after its task ran;
  a killed worker's message is delivered again and the idempotent task finishes the job.
- prefetch 1: a worker holds no queue of Korus-calling messages it cannot start.
- visibility_timeout above the longest countdown (COUNTDOWN_MAX_SECONDS; longer waits
  live in Redis deadlines), so the Redis transport never redelivers a scheduled message
  before it is due. It is short (5 min) and not how a killed worker is recovered from:
  claims with leases and the sweeper do that within a minute.
- JSON only: task arguments are ids, never pickled objects.
- Exactly one active beat: RedBeat keeps the schedule in Redis behind a lock that the
  active beat renews every loop; a standby beat blocks on the lock and takes over when it
  lapses (`redbeat_lock_timeout`), so several beat processes may run (deploy/README.md).
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from worker.booking.task_names import TaskName
from worker.queues import QUEUES, is_amqp, priorities
from worker.queues import task_queues as queue_declarations
from worker.redis_connect import is_cluster_url, parse_cluster_url
from worker.settings import load_settings

_settings = load_settings()

__all__ = ["QUEUES"]

broker_url = _settings.effective_broker_url
result_backend = None
task_ignore_result = True
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

task_acks_late = True
task_reject_on_worker_lost = True
# A task that failed or timed out is acknowledged (Celery's default, kept): its failure
# is counted in the booking record (tasks/policy.py) and the sweeper drives it again.
worker_prefetch_multiplier = 1
worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False
broker_connection_retry_on_startup = True

# Explicit limits: a Korus call is bounded by its own (connect, read) timeouts; these
# only stop a task that is wedged for another reason.
task_soft_time_limit = 120
task_time_limit = 150

# Priorities (worker/queues.py): on Redis 0 is served first, on RabbitMQ the highest.
# Every route carries the default priority because `send_task` (worker.enqueue) ignores
# `task_default_priority`: without it every message would have no priority, which Redis
# serves as 0, so the sweeper's urgent create_order would queue behind the others.
_priorities = priorities(broker_url)
DEFAULT_PRIORITY = _priorities.default
URGENT_PRIORITY = _priorities.urgent
task_default_priority = DEFAULT_PRIORITY

# Every queue hangs off the default exchange; on RabbitMQ each is a durable classic
# queue with x-max-priority (worker/queues.py says why not a quorum queue).
task_queues = queue_declarations(broker_url)
task_default_queue = "bookings"
task_create_missing_queues = False
task_routes = {
    name: {"queue": queue, "priority": DEFAULT_PRIORITY}
    for name, queue in (
        (TaskName.RESERVE, "bookings"),
        (TaskName.PAYMENT_SUCCEEDED, "payments"),
        (TaskName.CREATE_ORDER, "payments"),
        (TaskName.FETCH_DOCUMENTS, "documents"),
        (TaskName.NOTIFY, "callbacks"),
        (TaskName.SWEEP, "maintenance"),
    )
}
# The sweep drives recovery: it goes to the head of its queue's priority lists.
task_routes[TaskName.SWEEP]["priority"] = URGENT_PRIORITY
broker_transport_options = {
    "visibility_timeout": _settings.visibility_timeout_seconds,
    # How often a worker looks for messages of dead workers past the visibility timeout.
    "unacked_restore_interval": _settings.unacked_restore_interval_seconds,
    "unacked_restore_throttle": 1,
    "priority_steps": [0, 3, 6, 9],
    "sep": ":",
    # Fair turns between a worker's queues (kombu rotates the queue it just served), so a
    # backlog of reservations never starves documents, callbacks or the sweep. Within a
    # turn, BRPOP still takes the priority-0 lists of every queue first (urgent orders).
    # The "priority" strategy polled the queues in a fixed order: under load the sweep,
    # whose messages expire after one interval, never ran and recovery stalled.
    "queue_order_strategy": "round_robin",
}
if is_amqp(broker_url):
    # RabbitMQ: `send_task` returns only once the broker confirmed the message, so a
    # webhook is answered 2xx only after its message is durably queued.
    broker_transport_options["confirm_publish"] = True

# One task module per step of worker/booking, named after it (tasks/<step>.py).
imports = (
    "tasks.reserve",
    "tasks.payment",
    "tasks.ordering",
    "tasks.documents",
    "tasks.callbacks",
    "tasks.sweep",
)

# The beat entry of the sweep, named after its task; also its Sentry Crons monitor slug.
SWEEP_ENTRY = "booking.sweep"
# Sentry Crons monitors whole-minute intervals only. When the sweep runs more often, a
# second, minutely entry of the same task is the monitored heartbeat (a sweep is cheap and
# safe to overlap, so the extra run costs nothing); the fast entry is left unmonitored.
SWEEP_MONITOR_ENTRY = "booking.sweep.minutely"


def sweep_schedule(interval_seconds: float) -> dict[str, dict[str, Any]]:
    """The beat entries of the sweeper. Each carries `expires`: a sweep that could not
    start before the next one is due is pointless, and must not pile up in the queue."""
    entries: dict[str, dict[str, Any]] = {
        SWEEP_ENTRY: {
            "task": TaskName.SWEEP,
            "schedule": interval_seconds,
            "options": {"expires": interval_seconds, "queue": "maintenance"},
        }
    }
    if not is_whole_minutes(interval_seconds):
        entries[SWEEP_MONITOR_ENTRY] = {
            "task": TaskName.SWEEP,
            "schedule": crontab(),
            "options": {"expires": 60, "queue": "maintenance"},
        }
    return entries


def is_whole_minutes(seconds: float) -> bool:
    return seconds >= 60 and seconds % 60 == 0


def beat_loop_interval(lock_timeout_seconds: float) -> float:
    """How long beat may sleep between ticks. Each tick renews the lock, so this stays
    well below the lock timeout (five renewals per lock period) and is at most 5 s, which
    is also how often a standby beat tries to take the lock."""
    return max(1.0, min(5.0, lock_timeout_seconds / 5))


beat_schedule = sweep_schedule(_settings.sweep_interval_seconds)
beat_scheduler = "redbeat.RedBeatScheduler"
redbeat_redis_url = _settings.redis_url
if is_cluster_url(_settings.redis_url):
    # RedBeat opens a RedisCluster from one plain URL (the first seed node) when told to.
    redbeat_redis_url = parse_cluster_url(_settings.redis_url).seed_url()
    redbeat_redis_options = {"cluster": True, "decode_responses": True}
redbeat_key_prefix = "bw:redbeat"
# A standby beat takes over within lock timeout + one loop of the active one dying.
redbeat_lock_timeout = _settings.beat_lock_timeout_seconds
beat_max_loop_interval = beat_loop_interval(_settings.beat_lock_timeout_seconds)
