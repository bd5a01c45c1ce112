"""The task queues and their priorities, for either broker (Redis or RabbitMQ).

Priority runs in opposite directions on the two brokers:

- Redis transport: 0 is served first. kombu keeps one list per priority step
  (`payments`, `payments:3`, ...) and pops them in that order. Default 5, urgent 0.
- RabbitMQ: a higher number is served first, and only on a queue declared with
  `x-max-priority` (a message above the maximum counts as the maximum; one without a
  priority counts as 0). Queues are declared with `x-max-priority` 5: default 0,
  urgent 5. Five levels are plenty (each level costs the broker memory and CPU) and keep
  the urgent level above 4, which is what "high" means to RabbitMQ 4.x quorum queues.

They are durable *classic* queues on RabbitMQ, not quorum queues: the urgent order call
of a paid booking whose hold is about to lapse must overtake a backlog, and quorum
queues have no priorities before RabbitMQ 4.0 (the servers here run 3.10), only two
levels served by ratio, not strictly, in 4.0-4.2 (deploy/README.md, "RabbitMQ").
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu.entity import Exchange, Queue

QUEUES = ("payments", "bookings", "documents", "callbacks", "maintenance")

AMQP_MAX_PRIORITY = 5


@dataclass(frozen=True)
class Priorities:
    default: int
    urgent: int


REDIS_PRIORITIES = Priorities(default=5, urgent=0)
AMQP_PRIORITIES = Priorities(default=0, urgent=AMQP_MAX_PRIORITY)


def is_amqp(broker_url: str) -> bool:
    return broker_url.startswith(("amqp://", "amqps://", "pyamqp://"))


def priorities(broker_url: str) -> Priorities:
    """Default and urgent priority numbers in the broker's own direction."""
    return AMQP_PRIORITIES if is_amqp(broker_url) else REDIS_PRIORITIES


def task_queues(broker_url: str) -> list[Queue]:
    """Every queue hangs off the default exchange (""): a message goes straight to the
    queue named by its routing key (on Redis a named exchange costs a lookup of its
    binding set on every publish, and a lost binding key would drop messages silently).
    On RabbitMQ each is a durable classic queue with `x-max-priority`."""
    options = {"max_priority": AMQP_MAX_PRIORITY} if is_amqp(broker_url) else {}
    return [
        Queue(name, Exchange(""), routing_key=name, durable=True, **options)  # type: ignore[no-untyped-call]
        for name in QUEUES
    ]
