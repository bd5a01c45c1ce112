"""Celery settings, derived from `worker.settings` (imported lazily by worker.app).

Why these values:
- acks_late + reject_on_worker_lost: a message is acknowledged only after its task ran;
  a killed worker's message is delivered again and the idempotent task finishes the job.
- prefetch 1: a worker holds no queue of Korus-calling messages it cannot start.
- visibility_timeout above the longest countdown (retry cap, document waits), so the
  Redis transport never redelivers a scheduled message before it is due.
- JSON only: task arguments are ids, never pickled objects.
"""

from __future__ import annotations

from kombu import Queue

from worker.settings import load_settings

_settings = load_settings()

QUEUES = ("payments", "bookings", "documents", "callbacks", "maintenance")

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
worker_prefetch_multiplier = 1
worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False
broker_connection_retry_on_startup = True

# Explicit limits: a Korus call is bounded by its own (connect, read) timeouts; these
# only stop a task that is wedged for another reason.
task_soft_time_limit = 120
task_time_limit = 150

task_queues = [Queue(name, routing_key=name) for name in QUEUES]
task_default_queue = "bookings"
task_create_missing_queues = False
task_routes = {
    "booking.reserve": {"queue": "bookings"},
    "booking.payment_succeeded": {"queue": "payments"},
    "booking.create_order": {"queue": "payments"},
    "booking.fetch_documents": {"queue": "documents"},
    "booking.notify": {"queue": "callbacks"},
    "booking.sweep": {"queue": "maintenance"},
}
# Priorities on the Redis transport: 0 is served first. The sweeper sends an urgent
# create_order with priority 0 (head of the payments queue); everything else uses 5.
task_default_priority = 5
broker_transport_options = {
    "visibility_timeout": _settings.visibility_timeout_seconds,
    # How often a worker looks for messages of dead workers past the visibility timeout.
    "unacked_restore_interval": _settings.unacked_restore_interval_seconds,
    "unacked_restore_throttle": 1,
    "priority_steps": [0, 3, 6, 9],
    "sep": ":",
    "queue_order_strategy": "priority",
}

imports = ("tasks.reserve", "tasks.payments", "tasks.fulfil", "tasks.notify", "tasks.sweep")

beat_schedule = {
    "booking.sweep": {
        "task": "booking.sweep",
        "schedule": _settings.sweep_interval_seconds,
        # A sweep that could not start before the next one is due is pointless.
        "options": {"expires": _settings.sweep_interval_seconds, "queue": "maintenance"},
    }
}
beat_scheduler = "redbeat.RedBeatScheduler"
redbeat_redis_url = _settings.redis_url
redbeat_key_prefix = "bw:redbeat"
# A standby beat takes over within this many seconds of the active one dying.
redbeat_lock_timeout = 30
beat_max_loop_interval = 5
