"""Task messages waiting on a Redis broker, read straight from kombu's lists.

kombu keeps each queue as a Redis list and each priority level other than the first as a
`queue:N` list. Every list key outside the booking keyspace (`bw:`) is read, so a message
on an unexpected queue is seen too.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import redis


@dataclass(frozen=True)
class Message:
    queue: str  # the Redis list it waits in (`payments`, `payments:3`...)
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    headers: dict[str, Any]
    properties: dict[str, Any]

    @property
    def priority(self) -> int | None:
        value = self.properties.get("priority")
        return int(value) if value is not None else None


def broker_messages(client: redis.Redis, prefix: str = "") -> list[Message]:
    """Every task message waiting in a list whose name starts with `prefix`, in list
    order (the head of each list first)."""
    found: list[Message] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name.startswith("bw:") or client.type(name) not in ("list", b"list"):
            continue
        raws: list[Any] = client.lrange(name, 0, -1)
        for raw in raws:
            message = json.loads(raw)
            args, kwargs = json.loads(base64.b64decode(message["body"]))[:2]
            found.append(Message(name, message["headers"]["task"], args, kwargs,
                                 message["headers"], message["properties"]))
    return found


def queued(client: redis.Redis, queue: str) -> list[Message]:
    """The messages in one Redis list (one queue at one priority level), head first."""
    return [m for m in broker_messages(client, queue) if m.queue == queue]
