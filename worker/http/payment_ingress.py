"""A succeeded payment event recorded and enqueued in ONE Redis round trip.

`BookingService.record_payment` takes four round trips for the common case (claim the
event id and check the booking, publish the task, publish Celery's task-sent event, mark
the claim enqueued). When the broker is the very Redis database of the bookings (the
default deployment), this fast path does the same in one Lua script, atomically:

    SET NX the event claim  ->  booking exists?  ->  LPUSH the task message  ->  claim done

so there is no moment where the claim exists without its message (no `in_progress`
window for a first delivery), and a 2xx still means the message is on the broker (Redis
runs the script whole or not at all; AOF persists it like any LPUSH).

The message is built by Celery's own protocol-2 builder (`app.amqp.create_task_message`)
and laid out as kombu's Redis transport lays it (default exchange, the route's priority
list), so workers cannot tell it from one sent by `send_task`; a test compares the two.
Not done here: Celery's `task-sent` monitoring event (Flower shows the task when a worker
receives it). Everything else — failure events, duplicates, a claim left by a crashed
delivery, another broker — goes through `record_payment` unchanged.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from bisect import bisect
from typing import Any, Literal
from urllib.parse import urlsplit

import redis
from celery import Celery
from kombu.serialization import dumps as kombu_dumps

from worker.alerts import alert
from worker.booking import keys
from worker.booking.requests import PaymentEvent
from worker.booking.service import BookingService, PaymentOutcome, event_claim
from worker.booking.task_names import TaskName

# Celery's embed (the third part of a protocol-2 body) for a task with no workflow.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
# Below this, Celery's saferepr of the arguments is their plain repr (it cuts at 1,024).
_SHORT_REPR = 512

# KEYS: event claim, booking hash, queue list, booking's received payments, deadline index.
# ARGV: claim record (enqueued), ttl, task message, event key, due (deadline score),
#       booking id.
# Returns 1 enqueued, 0 unknown booking (claimed, nothing queued), -1 not claimed.
# As `record_payment` does, the event is kept on the booking until applied (so no cancel
# can close it meanwhile, and the sweeper applies it if the message is lost), and the
# booking is due at `due` at the latest (ZADD LT keeps an earlier deadline).
_RECORD_SCRIPT = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
  return -1
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[2]))
redis.call('ZADD', KEYS[5], 'LT', ARGV[5], ARGV[6])
redis.call('LPUSH', KEYS[3], ARGV[3])
return 1
"""


def same_database(client: redis.Redis, broker_url: str) -> bool:
    """Whether `broker_url` is a plain redis:// URL of the database `client` talks to."""
    if not broker_url.startswith("redis://"):
        return False
    pool = getattr(client, "connection_pool", None)
    if pool is None:  # a Redis Cluster client: the broker is never a cluster's database
        return False
    parts = urlsplit(broker_url)
    kwargs = pool.connection_kwargs
    try:
        db = int(parts.path.strip("/") or 0)
    except ValueError:
        return False
    return (parts.hostname or "localhost", parts.port or 6379, db) == (
        kwargs.get("host"), kwargs.get("port"), int(kwargs.get("db") or 0)
    )


class PaymentIngress:
    """`record(event)` with the one-script fast path when it applies."""

    def __init__(self, service: BookingService, celery_app: Celery) -> None:
        self.service = service
        self.redis: redis.Redis = service.redis
        self.app = celery_app
        self.enabled = same_database(self.redis, str(celery_app.conf.broker_url or ""))
        self._script = self.redis.register_script(_RECORD_SCRIPT)
        conf = celery_app.conf
        route = dict(conf.task_routes or {}).get(TaskName.PAYMENT_SUCCEEDED, {})
        self.queue: str = route.get("queue", conf.task_default_queue)
        self.priority: int = route.get("priority", conf.task_default_priority or 0)
        options = conf.broker_transport_options or {}
        steps = list(options.get("priority_steps", [0, 3, 6, 9]))
        sep = options.get("sep", "\x06\x16")
        step = steps[bisect(steps, self.priority) - 1]
        self.queue_key = f"{self.queue}{sep}{step}" if step else self.queue
        if options.get("global_keyprefix"):
            self.enabled = False  # kombu would prefix the queue key: not worth mirroring
        self._template: tuple[dict[str, Any], dict[str, Any], str, str] | None = None

    def _built(self, args: list[str], task_id: str) -> tuple[dict[str, Any], dict[str, Any],
                                                             str, str, bytes]:
        """Celery's own protocol-2 message for `args`: headers, properties, content type,
        encoding and serialized body (what `send_task` would publish)."""
        # send_task adds the time limits of a task this process registered (a worker, a
        # test that imported tasks/); the web front registers none. Read the registry
        # as send_task does, without finalizing the app (that would import tasks/).
        registered = self.app._tasks.get(TaskName.PAYMENT_SUCCEEDED)
        built = self.app.amqp.create_task_message(
            task_id, TaskName.PAYMENT_SUCCEEDED, args, {},
            ignore_result=True,  # as CeleryEnqueuer sends it
            reply_to=self.app.thread_oid,  # as send_task does
            time_limit=getattr(registered, "time_limit", None),
            soft_time_limit=getattr(registered, "soft_time_limit", None),
        )
        content_type, content_encoding, body = kombu_dumps(built.body, serializer="json")  # type: ignore[no-untyped-call]
        raw = body.encode(content_encoding) if isinstance(body, str) else body
        return dict(built.headers), dict(built.properties), content_type, content_encoding, raw

    def message(self, booking_id: str, event_key: str) -> str:
        """The task message as kombu's Redis transport stores it (JSON).

        Celery builds the first one; later ones reuse its constant parts and change only
        the task id, the arguments and their repr (Celery's builder and its saferepr were
        a tenth of a webhook's CPU). The test compares both with `send_task`'s message."""
        args = [booking_id, event_key]
        task_id = str(uuid.uuid4())
        argsrepr = repr(args)
        if self._template is None or len(argsrepr) > _SHORT_REPR:
            headers, properties, content_type, content_encoding, raw = self._built(args, task_id)
            if self._template is None:
                self._template = (headers, properties, content_type, content_encoding)
        else:
            base_headers, base_properties, content_type, content_encoding = self._template
            headers = {**base_headers, "id": task_id, "root_id": task_id, "argsrepr": argsrepr}
            properties = {**base_properties, "correlation_id": task_id,
                          "reply_to": self.app.thread_oid}
            raw = json.dumps([args, {}, _EMBED]).encode(content_encoding)
        properties = {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": self.queue},
            "priority": self.priority,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        }
        return json.dumps({
            "body": base64.b64encode(raw).decode("ascii"),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": headers,
            "properties": properties,
        })

    def record(self, event: PaymentEvent) -> PaymentOutcome:
        """Same outcomes and guarantees as `BookingService.record_payment`."""
        if not self.enabled or event.kind != "succeeded":
            return self.service.record_payment(event)
        record = event_claim(event, enqueued=True).model_dump_json()  # atomic with the LPUSH
        result = self._script(
            keys=[
                keys.payment_event(event.key),
                keys.booking(event.booking_id),
                self.queue_key,
                keys.payments(event.booking_id),
                keys.DEADLINES,
            ],
            args=[
                record,
                self.service.event_ttl_seconds,
                self.message(event.booking_id, event.key),
                event.key,
                repr(time.time() + self.service.redrive_after_seconds),
                event.booking_id,
            ],
        )
        outcome: Literal["enqueued", "unknown_booking"]
        if result == -1:
            return self.service.record_payment(event)  # duplicate, in progress, take-over
        if result == 0:
            alert("unknown_booking", event.booking_id, f"{event.provider} event {event.event_id}")
            outcome = "unknown_booking"
        else:
            outcome = "enqueued"
        return outcome
