"""work_per_booking: Korus calls, Redis commands and broker messages per booking, on the
happy path and with 10 % of Korus calls failing (the demo's fault mix), so nothing
wasted can hide.

Booking state and the broker each get a private redis-server. Redis commands are counted
with MONITOR on the state server (round trips: the server's socket reads, less the
driver's own polling), per client, leaving out the bench's own polling
connection (`bench-poll`); commands run inside Lua scripts are counted apart. Broker
messages are the LPUSHes on the broker server (INFO commandstats; a task message is one
LPUSH), task events the PUBLISHes. Korus calls are the sandbox's own call counts.
Counts, not timings: the figures do not depend on the machine's load. The happy path's
baseline is the minimum of the design (4 Korus calls, 6 task messages); the fault run's
is the happy path measured in the same run.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import redis

from bench.common import (
    Figure,
    Options,
    command_counts,
    command_for,
    deployment,
    private_redis,
    reset_stats,
    wait_drained,
)
from bench.driver import Driver

NAME = "work_per_booking"
# Design minimum of a Day Pass booking: reservations/_bulk, orders/_bulk, the order's
# documents, one document URL; reserve, notify(reserved), payment_succeeded, create_order,
# fetch_documents, notify(completed).
MIN_KORUS_CALLS = 4
MIN_MESSAGES = 6


class Monitor:
    """Counts the commands a Redis server runs, per client address, via MONITOR."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.by_client: dict[str, Counter[str]] = {}
        self.lua: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Monitor:
        self.thread.start()
        return self

    def _run(self) -> None:
        client = redis.Redis.from_url(self.url)
        with client.monitor() as monitor:
            self.ready = True
            for command in monitor.listen():
                if self.stop.is_set():
                    break
                name = str(command["command"]).split(" ", 1)[0].strip('"').upper()
                if command.get("client_type") == "lua":
                    self.lua[name] += 1
                    continue
                address = f"{command['client_address']}:{command.get('client_port', '')}"
                self.by_client.setdefault(address, Counter())[name] += 1
        client.close()

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        poke = redis.Redis.from_url(self.url)
        poke.ping()  # wakes the listener so it sees the stop flag
        poke.close()
        self.thread.join(10)

    def totals(self, leave_out: set[str]) -> Counter[str]:
        total: Counter[str] = Counter()
        for address, counts in self.by_client.items():
            if address not in leave_out:
                total.update(counts)
        total.pop("PING", None)  # the poke
        return total


def reads_processed(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_reads_processed"])
    finally:
        client.close()


def client_addresses(url: str, name: str) -> set[str]:
    client = redis.Redis.from_url(url)
    try:
        return {c["addr"] for c in client.client_list() if c.get("name") == name}
    finally:
        client.close()


def one_run(count: int, fault_rate: float, timeout: float) -> dict[str, Any]:
    from korus_sandbox.admin import SandboxAdmin
    from worker.demo.fleet import fault_spec

    sandbox_args: list[str] = []
    overrides: dict[str, str] = {}
    if fault_rate:
        sandbox_args = ["--fault", fault_spec(fault_rate)]
        overrides = {"KORUS_READ_TIMEOUT": "2", "KORUS_CONNECT_TIMEOUT": "1",
                     "RETRY_BACKOFF_CAP_SECONDS": "4", "STUCK_AFTER_SECONDS": "30"}
    with private_redis() as state_url, private_redis() as broker_url, deployment(
        redis_url=state_url, broker_url=broker_url, sandbox_args=sandbox_args, workers=2,
        concurrency=4, label=f"{NAME}-{fault_rate}", overrides=overrides,
    ) as dep:
        admin = SandboxAdmin(dep.sandbox_url)
        driver = Driver(state_url, broker_url, admin.catalog())
        try:
            driver.batch(4, timeout=60)  # warm-up: workers up, token cached
            wait_drained(broker_url)
            calls_before = Counter(admin.calls())
            reset_stats(broker_url)
            reads_before = reads_processed(state_url)
            driver.poll_round_trips = 0
            with Monitor(state_url) as monitor:
                run = driver.batch(count, timeout=timeout)
                wait_drained(broker_url, timeout=30)  # trailing notify messages
                poll = client_addresses(state_url, "bench-poll")
            # Socket reads the server processed: one per round trip (a pipeline is one),
            # less the driver's polling and this bench's own calls (about 4).
            round_trips = reads_processed(state_url) - reads_before - driver.poll_round_trips - 4
            broker = command_counts(broker_url)
            calls = Counter(admin.calls()) - calls_before
        finally:
            driver.close()
    commands = monitor.totals(poll)
    n = max(1, count)
    return {
        "bookings": count,
        "completed": run.completed,
        "states": dict(Counter(run.states.values())),
        "korus_calls": sum(calls.values()) / n,
        "korus_calls_by_endpoint": {k: round(v / n, 2) for k, v in sorted(calls.items())},
        "redis_commands": sum(commands.values()) / n,
        "redis_commands_by_name": {k: round(v / n, 2) for k, v in commands.most_common()},
        "redis_commands_in_lua": sum(monitor.lua.values()) / n,
        "redis_round_trips": round_trips / n,
        "broker_messages": broker.get("lpush", 0) / n,
        "broker_task_events": broker.get("publish", 0) / n,
        "broker_commands": sum(broker.values()) / n,
        "broker_commands_by_name": {k: round(v / n, 2) for k, v in sorted(broker.items())},
    }


def measure(options: Options) -> list[Figure]:
    count = options.size(100, 10)
    happy = one_run(count, 0.0, timeout=options.size(120, 45))
    faults = one_run(count, 0.10, timeout=options.size(180, 60)) if not options.smoke else None
    command = command_for(NAME, options)
    figures = []
    for label, key, unit, minimum in (
        ("Korus calls", "korus_calls", "calls/booking", MIN_KORUS_CALLS),
        ("Redis commands", "redis_commands", "commands/booking", None),
        ("Redis round trips", "redis_round_trips", "round trips/booking", None),
        ("broker messages", "broker_messages", "messages/booking", MIN_MESSAGES),
    ):
        figures.append(Figure(
            f"{NAME} {label}", happy[key], unit,
            "design minimum" if minimum else "-", minimum, "no waste (value = minimum)",
            command, details=happy if key == "korus_calls" else {}))
        if faults is not None:
            figures.append(Figure(
                f"{NAME} {label} @10% faults", faults[key], unit, "happy path, same run",
                happy[key], "retries only what failed", command,
                details=faults if key == "korus_calls" else {}))
    return figures
