"""Which Redis commands each step of one booking issues, step by step, in one process.

    .venv/bin/python bench/step_trace.py                 # 20 Day Pass bookings
    .venv/bin/python bench/step_trace.py --bookings 50 --profile /tmp/steps.prof

Runs the steps of each booking inline (no Celery: the messages a step sends are run
next, in order) against a private redis-server and the Korus sandbox: the web front's
create and payment (`BookingService`), then every task the steps enqueue. Counts, per
step and per booking, the round trips (a command sent alone, or one pipeline) and the
commands by name as the client sends them (EVALSHA named by its script's first line),
from the client side. The total is what `python -m bench --only work_per_booking` counts
from the server side, less the liveness heartbeats and Celery's own traffic.
`--profile` writes a cProfile of the worker steps (not the web front).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.common import deployment, private_redis  # noqa: E402


class Counting:
    """Counts round trips and commands of every redis-py client in this process."""

    def __init__(self) -> None:
        self.round_trips: Counter[str] = Counter()
        self.cpu: dict[str, float] = {}  # CPU seconds of this process per worker step
        self.commands: dict[str, Counter[str]] = {}
        self.step = "-"
        self.scripts: dict[str, str] = {}  # sha1 -> first line of its source

    def name(self, args: tuple[Any, ...]) -> str:
        command = str(args[0]).upper()
        if command == "EVALSHA":
            return f"EVALSHA[{self.scripts.get(str(args[1]), str(args[1])[:8])}]"
        return command

    def count(self, names: list[str]) -> None:
        if not names:
            return
        self.round_trips[self.step] += 1
        self.commands.setdefault(self.step, Counter()).update(names)

    @contextmanager
    def installed(self) -> Iterator[None]:
        plain: Any = redis.Redis.execute_command
        pipelined = redis.client.Pipeline.execute
        load = redis.Redis.script_load
        counting = self

        def execute_command(client: Any, *args: Any, **options: Any) -> Any:
            counting.count([counting.name(args)])
            return plain(client, *args, **options)

        def execute(pipe: Any, raise_on_error: bool = True) -> Any:
            counting.count([counting.name(args) for args, _ in pipe.command_stack])
            return pipelined(pipe, raise_on_error)

        def script_load(client: Any, script: str) -> Any:
            sha = load(client, script)
            first = next((line for line in script.strip().splitlines() if line.strip()), "")
            counting.scripts[str(sha)] = first.strip()[:48]
            return sha

        patched = ((redis.Redis, "execute_command", execute_command, plain),
                   (redis.client.Pipeline, "execute", execute, pipelined),
                   (redis.Redis, "script_load", script_load, load))
        for owner, name, new, _ in patched:
            setattr(owner, name, new)
        try:
            yield
        finally:
            for owner, name, _, old in patched:
                setattr(owner, name, old)


class InlineEnqueuer:
    """The Enqueuer protocol: messages kept in order, run by the trace loop."""

    def __init__(self) -> None:
        self.queue: deque[tuple[str, tuple[Any, ...], dict[str, Any]]] = deque()

    def reserve(self, booking_id: str) -> None:
        self.queue.append(("reserve", (booking_id,), {}))

    def payment_succeeded(self, booking_id: str, event_id: str) -> None:
        self.queue.append(("payment_succeeded", (booking_id, event_id), {}))

    def create_order(self, booking_id: str, *, urgent: bool = False, countdown: float = 0) -> None:
        self.queue.append(("create_order", (booking_id,), {}))

    def fetch_documents(
        self, booking_id: str, *, countdown: float = 0, refresh: bool = False
    ) -> None:
        self.queue.append(("fetch_documents", (booking_id,), {"refresh": refresh}))

    def notify(self, booking_id: str, event_type: str) -> None:
        self.queue.append((f"notify {event_type}", (booking_id, event_type), {}))


def steps() -> dict[str, Callable[..., Any]]:
    from worker.booking.callbacks import deliver
    from worker.booking.documents import fetch_documents
    from worker.booking.ordering import create_order
    from worker.booking.payment import payment_succeeded
    from worker.booking.reserve import reserve

    return {"reserve": reserve, "payment_succeeded": payment_succeeded,
            "create_order": create_order, "fetch_documents": fetch_documents,
            "notify": deliver}


def trace(url: str, sandbox_url: str, count: int, profile: str | None) -> Counting:
    from bench.driver import day_pass_request
    from korus_sandbox.admin import SandboxAdmin
    from worker.booking.context import RetryLater, StepContext
    from worker.booking.requests import PaymentEvent
    from worker.booking.service import BookingService
    from worker.booking.store import BookingStore
    from worker.korus.client import KorusClient
    from worker.runtime import deadline_policy
    from worker.settings import load_settings

    load_settings.cache_clear()
    settings = load_settings()
    catalog = SandboxAdmin(sandbox_url).catalog()
    web = redis.Redis.from_url(url, decode_responses=True)
    worker = redis.Redis.from_url(url, decode_responses=True)
    web_store = BookingStore(web, retention_seconds=settings.retention_seconds,
                             deadline_policy=deadline_policy(settings))
    store = BookingStore(worker, retention_seconds=settings.retention_seconds,
                         deadline_policy=deadline_policy(settings))
    inline = InlineEnqueuer()
    service = BookingService(web_store, inline, event_ttl_seconds=3600, policy="all_or_nothing")
    korus = KorusClient.from_settings(settings, worker)
    ctx = StepContext(settings=settings, redis=worker, store=store, enqueue=inline,
                      korus_factory=lambda: korus, owner=lambda: "trace:1")
    run = steps()
    counting = Counting()
    profiler = cProfile.Profile(time.process_time) if profile else None
    waits: Counter[str] = Counter()
    with counting.installed():
        for n in range(count + 1):  # the first booking warms up (token, scripts): not counted
            counting.step = "warm-up" if n == 0 else "web: create"
            booking = service.start_booking(day_pass_request(catalog, n)).booking
            paid = False
            for _ in range(50):
                if not inline.queue:
                    if paid:
                        break
                    counting.step = "trace"  # the trace's own read, left out
                    held = store.load(booking.id)
                    assert held is not None and held.total_minor is not None, held
                    counting.step = "warm-up" if n == 0 else "web: payment"
                    service.record_payment(PaymentEvent(
                        provider="bench", event_id=f"evt_{booking.id}", kind="succeeded",
                        booking_id=booking.id, payment_id=f"pi_{booking.id}",
                        amount_minor=held.total_minor, currency=held.currency))
                    paid = True
                    continue
                name, args, kwargs = inline.queue.popleft()
                counting.step = "warm-up" if n == 0 else name
                step = run[name.split(" ", 1)[0]]
                if profiler is not None and n:
                    profiler.enable()
                cpu = time.process_time()
                try:
                    step(ctx, *args, task_id=f"task-{n}-{name}", **kwargs)
                except RetryLater as wait:
                    waits[name] += 1
                    inline.queue.append((name, args, kwargs))
                    print(f"{booking.id} {name}: waits {wait.countdown:.1f}s ({wait})",
                          file=sys.stderr)
                finally:
                    spent = time.process_time() - cpu
                    counting.cpu[counting.step] = counting.cpu.get(counting.step, 0.0) + spent
                    if profiler is not None:
                        profiler.disable()
            counting.step = "trace"
            final = store.load(booking.id)
            assert final is not None and final.state.value == "completed", final
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    web.close()
    worker.close()
    return counting


def report(counting: Counting, count: int) -> None:
    order = [s for s in counting.round_trips if s not in ("warm-up", "trace")]
    total_trips = sum(counting.round_trips[s] for s in order)
    total_cmds = sum(sum(counting.commands[s].values()) for s in order)
    cpu = sum(counting.cpu.get(s, 0.0) for s in order)
    print(f"per booking ({count} bookings): {total_trips / count:.2f} round trips, "
          f"{total_cmds / count:.2f} commands, {cpu / count * 1000:.2f} ms CPU in the "
          "worker steps (this process; with --profile, inflated by the profiler)")
    for step in order:
        commands = counting.commands[step]
        spent = f", {counting.cpu[step] / count * 1000:.2f} ms CPU" if step in counting.cpu else ""
        print(f"\n{step}: {counting.round_trips[step] / count:.2f} round trips, "
              f"{sum(commands.values()) / count:.2f} commands{spent}")
        for name, calls in commands.most_common():
            print(f"    {calls / count:6.2f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=20)
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="write a cProfile of the worker steps here")
    args = parser.parse_args()
    from worker.processes import service_env

    with private_redis() as url, deployment(redis_url=url, label="step-trace") as dep:
        os.environ.update(service_env(url, dep.sandbox_url, LOG_LEVEL="WARNING"))
        counting = trace(url, dep.sandbox_url, args.bookings, args.profile)
    report(counting, args.bookings)


if __name__ == "__main__":
    main()
