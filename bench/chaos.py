"""A bounded, repeatable chaos run of the whole fleet on loopback (issue 9).

    python -m bench.chaos [--bookings N] [--seed S] [--json FILE]

What runs, each a real process: a private redis-server with AOF on its own port
(31000-31099), the Korus sandbox with faults on every endpoint (5xx 10 %, 429 5 %,
timeouts after commit 5 %, latency; `--shapes varied` when the sandbox has it), the web
front (gunicorn), several Celery workers (the Procfile's `worker` and `payments` roles)
and two beats. The timers that drive recovery keep their defaults (sweep interval,
redrive period, liveness keys, visibility timeout); only Korus timeouts are shortened so
that faults resolve in seconds.

The load: N bookings through `POST /v1/bookings`; once held, most are paid through
`POST /webhooks/payments`, each success event delivered 3 times (two of them at once),
with `payment.failed` attempts mixed in before it; a few are never paid. Meanwhile
workers are SIGKILLed at random and restarted, the active beat is killed once, and the
redis-server is restarted once (SIGTERM; AOF reloads it).

Figures (printed as a table, and written as JSON with --json):
- bookings, paid, completed, refund_required, unpaid;
- lost: bookings whose record vanished, or paid bookings that record no payment at all;
- double_orders: reservations ordered more than once, plus bookings with more orders than
  holds; max_orders_per_booking;
- stranded_paid: paid, not final after the drain, and no alert on the booking;
- duplicate_callbacks: merchant callbacks received again with a webhook-id already seen;
- max_recovery_seconds: for each booking whose step was claimed by a killed worker, the
  time from the kill to the booking's next progress, the largest;
- drain_seconds: from the last payment delivered until every paid booking is final;
- process_crashes: processes of the fleet that exited without being killed by the run (a
  process manager's restart is simulated: each is started again, and the run fails).

Every loop is bounded in count and in time; nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
import requests

from worker.processes import (
    Proc,
    RedisServer,
    beat_proc,
    free_port,
    service_env,
    wait_http,
    worker_proc,
)

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + base64.b64encode(b"chaos-run-webhook-secret-32bytes").decode()
CALLBACK_SECRET = "whsec_" + base64.b64encode(b"chaos-run-callback-secret-32byte").decode()
MERCHANT_KEY = "chaos-merchant-key"
REDIS_PORTS = range(31000, 31100)
PRODUCTS = (("Day Pass", 0.7), ("Timed Museum Entry", 0.15), ("Late Documents Tour", 0.15))
FAULTS = "*:error_rate=0.1,rate_limit_rate=0.05,timeout_after_commit_rate=0.05," \
    "latency_ms=30,timeout_seconds=3"


@dataclass
class Options:
    bookings: int = 1000
    seed: int = 1
    json_path: Path | None = None
    workers: int = 2
    payments_workers: int = 2
    concurrency: int = 3
    clients: int = 16
    unpaid_share: float = 0.05
    kill_every: tuple[float, float] = (5.0, 15.0)
    drain_limit: float = 420.0

    @property
    def load_limit(self) -> float:
        return 180.0 + 1.5 * self.bookings


# -- processes ---------------------------------------------------------------------------


def redis_port() -> int:
    for port in REDIS_PORTS:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise SystemExit("no free port in 31000-31099 for the private redis-server")


def group_pids(pgid: int) -> list[int]:
    """Processes of a process group (a Celery worker and its pool), from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids


@dataclass
class Fleet:
    env: dict[str, str]
    logs: Path
    options: Options
    procs: dict[str, Proc] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)

    def start(self, name: str) -> Proc:
        self.starts[name] += 1
        log = self.logs / f"{name}-{self.starts[name]}.log"
        if name.startswith("worker"):
            proc = worker_proc(self.env, name=name, concurrency=self.options.concurrency,
                               queues="bookings,documents,callbacks,maintenance", log=log)
        elif name.startswith("payments"):
            proc = worker_proc(self.env, name=name, concurrency=self.options.concurrency,
                               queues="payments", log=log)
        else:
            proc = beat_proc(self.env, log=log)
        self.procs[name] = proc.start()
        return proc

    def workers(self) -> list[str]:
        return [n for n in self.procs if not n.startswith("beat")]

    def kill(self, name: str) -> list[int]:
        proc = self.procs[name]
        pids = group_pids(proc.pid)
        proc.kill()
        assert proc.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.process.wait(10)
        return pids

    def supervise(self) -> None:
        """Restart, as a process manager would, every process that exited without being
        killed here, and record it: a crash fails the run, since nothing in it (a worker
        kill, a Redis restart, Korus faults) may stop a process of the fleet. The end of
        its log goes to stderr at once (the logs are removed after the run)."""
        for name, proc in list(self.procs.items()):
            if not proc.running:
                code = proc.process.returncode if proc.process is not None else None
                self.crashes.append(f"{name} (exit {code}, log {proc.log_path})")
                tail: list[str] = []
                if proc.log_path is not None:
                    with contextlib.suppress(OSError):
                        tail = proc.log_path.read_text(errors="replace").splitlines()[-15:]
                print(f"chaos: {name} exited on its own (exit {code}); its log ends:",
                      *(f"  | {line}" for line in tail), sep="\n", file=sys.stderr)
                self.start(name)

    def active_beat(self) -> str | None:
        """The beat that sent the latest sweep (RedBeat lets one beat send at a time)."""
        latest: tuple[float, str] | None = None
        for name, proc in self.procs.items():
            if not name.startswith("beat") or proc.log_path is None:
                continue
            with contextlib.suppress(OSError):
                if "Sending due task" in proc.log_path.read_text(errors="replace"):
                    moment = proc.log_path.stat().st_mtime
                    if latest is None or moment > latest[0]:
                        latest = (moment, name)
        return None if latest is None else latest[1]

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop(timeout=10)


# -- the merchant's callback endpoint -----------------------------------------------------


@dataclass
class Merchant:
    seen: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    server: ThreadingHTTPServer | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[Merchant]:
        merchant = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with merchant.lock:
                    merchant.seen[self.headers.get("webhook-id", "")] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/callbacks"

    def duplicates(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.seen.values() if n > 1)


# -- the load ----------------------------------------------------------------------------


def sign(msg_id: str, body: bytes) -> dict[str, str]:
    from standardwebhooks import Webhook

    moment = datetime.now(UTC)
    signature = Webhook(SECRET).sign(msg_id, moment, body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }


@dataclass
class Outcome:
    booking_id: str | None = None
    paid: bool = False
    paid_at: float | None = None
    error: str | None = None


@dataclass
class Load:
    web_url: str
    catalog: dict[str, dict[str, Any]]
    merchant_url: str
    options: Options
    deadline: float
    local: threading.local = field(default_factory=threading.local)

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session  # type: ignore[no-any-return]

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 202),
             attempts: int = 40, **kwargs: Any) -> requests.Response | None:
        """A provider or shop retrying: 5xx and connection errors again, bounded."""
        for attempt in range(attempts):
            if time.monotonic() > self.deadline:
                return None
            with contextlib.suppress(requests.RequestException):
                response = self.session().request(method, self.web_url + path, timeout=15,
                                                  **kwargs)
                if response.status_code in ok:
                    return response
                if response.status_code < 500:
                    return response
            time.sleep(min(5.0, 0.2 * 2**attempt))
        return None

    def body(self, rng: random.Random, n: int) -> dict[str, Any]:
        names = [name for name, _ in PRODUCTS]
        name = rng.choices(names, weights=[w for _, w in PRODUCTS])[0]
        entry = self.catalog[name]
        session: dict[str, Any] = {"ticket": entry["tickets"][0]}
        if entry.get("sessions"):
            session["session"] = rng.choice(entry["sessions"])
        return {
            "externalReference": f"CHAOS-{n}",
            "items": [{"offer": entry["offer"], "quantity": 1, "ticketSessions": [session]}],
            "customer": {"firstname": "Ada", "lastname": "Lovelace",
                         "email": "ada@example.com"},
            "callbackUrl": self.merchant_url,
        }

    def deliver(self, msg_id: str, body: bytes) -> bool:
        response = self.call("POST", "/webhooks/payments", data=body,
                             headers=sign(msg_id, body))
        return response is not None and response.status_code == 200

    def one(self, n: int) -> Outcome:
        rng = random.Random(self.options.seed * 1_000_003 + n)
        outcome = Outcome()
        auth = {"Authorization": f"Bearer {MERCHANT_KEY}"}
        created = self.call("POST", "/v1/bookings", json=self.body(rng, n), headers=auth)
        if created is None or created.status_code not in (201, 202):
            outcome.error = f"create: {None if created is None else created.status_code}"
            return outcome
        booking_id = str(created.json()["id"])
        outcome.booking_id = booking_id
        held: dict[str, Any] | None = None
        for _ in range(600):  # bounded: 0.5 s apart
            got = self.call("GET", f"/v1/bookings/{booking_id}", headers=auth)
            if got is None:
                break
            state = got.json().get("state")
            if state == "awaiting_payment":
                held = got.json()
                break
            if state in ("reservation_failed", "cancelled", "expired", "refund_required"):
                break
            time.sleep(0.5)
        if held is None or rng.random() < self.options.unpaid_share:
            return outcome
        amount = int((Decimal(str(held["totalAmountInclTax"])) * 100).to_integral_value())
        payment_id = f"pay_{booking_id}"
        for k in range(rng.randint(0, 2)):  # declined attempts before the success
            failed = json.dumps({"type": "payment.failed", "data": {
                "booking_id": booking_id, "payment_id": payment_id}}).encode()
            self.deliver(f"msg_fail_{k}_{booking_id}", failed)
        success = json.dumps({"type": "payment.succeeded", "data": {
            "booking_id": booking_id, "payment_id": payment_id, "amount": amount,
            "currency": "EUR"}}).encode()
        msg_id = f"msg_ok_{booking_id}"
        with ThreadPoolExecutor(2) as pair:  # two copies at once
            results = list(pair.map(lambda _: self.deliver(msg_id, success), range(2)))
        time.sleep(rng.uniform(0, 2))
        results.append(self.deliver(msg_id, success))  # and a late one
        if any(results):
            outcome.paid = True
            outcome.paid_at = time.monotonic()
        return outcome


# -- recovery ----------------------------------------------------------------------------


@dataclass
class Kill:
    at_wall: float
    owners: set[str]
    affected: list[str] = field(default_factory=list)


def in_flight(store: Any, ids: list[str], owners: set[str]) -> list[str]:
    from worker.booking.states import FINAL

    affected = []
    for booking in store.load_many(ids):
        if booking.state in FINAL:
            continue
        claim = booking.claim.owner if booking.claim else None
        attempt = booking.order_attempt.owner if booking.order_attempt else None
        if claim in owners or attempt in owners:
            affected.append(booking.id)
    return affected


_NOT_PROGRESS = ("payment attempt failed", "payment cancelled", "no progress in")


def recovery_seconds(store: Any, kill: Kill) -> list[tuple[float, str]]:
    times = []
    for booking_id in kill.affected:
        later = [
            datetime.fromisoformat(entry["at"]).timestamp()
            for entry in store.timeline(booking_id)
            if datetime.fromisoformat(entry["at"]).timestamp() > kill.at_wall
            and not str(entry["reason"]).startswith(_NOT_PROGRESS)
        ]
        times.append((min(later) - kill.at_wall if later else float("inf"), booking_id))
    return times


# -- the run -----------------------------------------------------------------------------


def sandbox_argv(port: int, seed: int) -> list[str]:
    argv = [sys.executable, "-m", "korus_sandbox", "--host", "127.0.0.1", "--port",
            str(port), "--hold-seconds", "240", "--documents-delay", "5", "--seed", str(seed),
            "--fault", FAULTS]
    help_text = subprocess.run([*argv[:3], "--help"], capture_output=True, text=True,
                               timeout=60, check=False).stdout
    if "--shapes" in help_text:
        argv += ["--shapes", "varied"]
    return argv


def run(options: Options) -> dict[str, Any]:
    rng = random.Random(options.seed)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bw-chaos-"))
    server = RedisServer(redis_port(), work).start()
    sandbox_port = free_port()
    sandbox = Proc("sandbox", sandbox_argv(sandbox_port, options.seed), os.environ,
                   work / "sandbox.log").start()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    fleet: Fleet | None = None
    web: Proc | None = None
    try:
        wait_http(f"{sandbox_url}/_sandbox/catalog", timeout=60)
        from korus_sandbox.admin import SandboxAdmin

        admin = SandboxAdmin(sandbox_url)
        catalog = admin.catalog()
        with Merchant().running() as merchant:
            env = service_env(
                server.url, sandbox_url,
                KORUS_READ_TIMEOUT="2", KORUS_CONNECT_TIMEOUT="1",
                KORUS_TOKEN_WAIT_SECONDS="3",
                PAYMENTS_WEBHOOK_SECRET=SECRET, CALLBACK_SECRET=CALLBACK_SECRET,
                MERCHANT_API_KEYS=MERCHANT_KEY, CALLBACK_ALLOW_HTTP="true",
                # The merchant is a loopback receiver: exempt it from the SSRF refusal.
                CALLBACK_ALLOWED_HOSTS="127.0.0.1", CALLBACK_ALLOWED_NETWORKS="127.0.0.0/8",
                WEB_CONCURRENCY="2", WEB_THREADS="8", LOG_LEVEL="INFO",
            )
            fleet = Fleet(env, work, options)
            for k in range(options.workers):
                fleet.start(f"worker{k}")
            for k in range(options.payments_workers):
                fleet.start(f"payments{k}")
            fleet.start("beat0")
            fleet.start("beat1")
            web_port = free_port()
            web = Proc("web", [sys.executable, "-m", "gunicorn", "-c",
                               str(ROOT / "deploy" / "gunicorn.conf.py"), "--bind",
                               f"127.0.0.1:{web_port}", "--chdir", str(ROOT),
                               "worker.http.wsgi:application"], env, work / "web.log").start()
            web_url = f"http://127.0.0.1:{web_port}"
            wait_http(f"{web_url}/healthz", timeout=60)
            return drive(options, rng, server, fleet, admin, merchant, web_url, catalog,
                         started, work)
    finally:
        if web is not None:
            web.stop()
        if fleet is not None:
            fleet.stop()
        sandbox.stop()
        server.stop()
        if os.environ.get("CHAOS_KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)


def drive(options: Options, rng: random.Random, server: RedisServer, fleet: Fleet,
          admin: Any, merchant: Merchant, web_url: str, catalog: dict[str, Any],
          started: float, work: Path) -> dict[str, Any]:
    from worker.booking.store import BookingStore

    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=10)
    store = BookingStore(client, retention_seconds=3600)
    deadline = time.monotonic() + options.load_limit
    load = Load(web_url, catalog, merchant.url, options, deadline)
    outcomes: list[Outcome] = []
    kills: list[Kill] = []
    events: Counter[str] = Counter()
    done = threading.Event()
    ids_lock = threading.Lock()
    ids: list[str] = []

    def chaos() -> None:
        beat_killed = redis_restarted = False
        for _ in range(10_000):  # bounded; stops with the load
            if done.wait(rng.uniform(*options.kill_every)):
                return
            fleet.supervise()
            progress = len(outcomes) / options.bookings
            if not beat_killed and progress >= 0.4:
                active = fleet.active_beat()
                if active is not None:
                    fleet.kill(active)
                    fleet.start(active)
                    events["beat_kills"] += 1
                    beat_killed = True
                    continue
            if not redis_restarted and progress >= 0.6:
                events["redis_restart_ms"] = int(server.restart() * 1000)
                events["redis_restarts"] += 1
                redis_restarted = True
                continue
            name = rng.choice(fleet.workers())
            pids = fleet.kill(name)
            kill = Kill(time.time(), {f"{socket.gethostname()}:{pid}" for pid in pids})
            with ids_lock:
                known = list(ids)
            with contextlib.suppress(redis.RedisError):
                kill.affected = in_flight(store, known, kill.owners)
            kills.append(kill)
            fleet.start(name)
            events["worker_kills"] += 1

    def one(n: int) -> Outcome:
        outcome = load.one(n)
        if outcome.booking_id is not None:
            with ids_lock:
                ids.append(outcome.booking_id)
        outcomes.append(outcome)
        return outcome

    chaos_thread = threading.Thread(target=chaos, daemon=True)
    chaos_thread.start()
    print(f"chaos: {options.bookings} bookings, seed {options.seed}, logs in {work}",
          file=sys.stderr)
    with ThreadPoolExecutor(options.clients) as pool:
        list(pool.map(one, range(options.bookings)))
    done.set()
    chaos_thread.join(60)
    load_seconds = time.monotonic() - started

    paid_ids = {o.booking_id for o in outcomes if o.paid and o.booking_id}
    last_paid = max((o.paid_at for o in outcomes if o.paid_at), default=time.monotonic())
    from worker.booking.states import FINAL

    drain_deadline = time.monotonic() + options.drain_limit
    while time.monotonic() < drain_deadline:  # bounded
        fleet.supervise()
        with contextlib.suppress(redis.RedisError):
            if all(b.state in FINAL for b in store.load_many(paid_ids)):
                break
        time.sleep(1)
    drain_seconds = time.monotonic() - last_paid
    time.sleep(3)  # callbacks of the last transitions
    fleet.supervise()
    return figures(options, store, admin, merchant, outcomes, paid_ids, kills, events,
                   load_seconds, drain_seconds, fleet.crashes)


def figures(options: Options, store: Any, admin: Any, merchant: Merchant,
            outcomes: list[Outcome], paid_ids: set[str], kills: list[Kill],
            events: Counter[str], load_seconds: float, drain_seconds: float,
            crashes: list[str]) -> dict[str, Any]:
    from worker.booking.states import FINAL, State

    created = [o.booking_id for o in outcomes if o.booking_id]
    records = {b.id: b for b in store.load_many(created)}
    states = Counter(b.state.value for b in records.values())
    lost = [i for i in created if i not in records]
    for booking_id in paid_ids:
        booking = records.get(booking_id)
        if booking is None:
            continue
        money = [booking.payment, booking.pending_payment, *booking.extra_payments]
        if all(p is None for p in money) and not store.pending_payment_events([booking_id]):
            lost.append(booking_id)
    stranded = [
        i for i in paid_ids
        if i in records and records[i].state not in FINAL and not records[i].alerts
    ]
    orders = admin.orders()
    per_reservation = Counter(o["reservation"] for o in orders)
    per_booking = Counter(o["externalReference"] for o in orders)
    over = sum(1 for i, n in per_booking.items()
               if i in records and n > max(1, len(records[i].reservations)))
    measured = sorted((pair for kill in kills for pair in recovery_seconds(store, kill)),
                      reverse=True)
    recoveries = [t for t, _ in measured]
    finite = [t for t in recoveries if t != float("inf")]
    return {
        "bookings": len(created),
        "paid": len(paid_ids),
        "completed": states.get(State.COMPLETED.value, 0),
        "refund_required": states.get(State.REFUND_REQUIRED.value, 0),
        "unpaid": len(created) - len(paid_ids),
        "lost": len(lost),
        "double_orders": sum(1 for n in per_reservation.values() if n > 1) + over,
        "max_orders_per_booking": max(per_booking.values(), default=0),
        "stranded_paid": len(stranded),
        "duplicate_callbacks": merchant.duplicates(),
        "callbacks_received": sum(merchant.seen.values()),
        "max_recovery_seconds": round(max(recoveries), 1) if recoveries else 0.0,
        "recovered_bookings": len(finite),
        "unrecovered_bookings": len(recoveries) - len(finite),
        "drain_seconds": round(drain_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "worker_kills": events["worker_kills"],
        "beat_kills": events["beat_kills"],
        "redis_restarts": events["redis_restarts"],
        "redis_restart_ms": events["redis_restart_ms"],
        "process_crashes": len(crashes),
        "crashed": crashes,
        "slowest_recoveries": [(round(t, 1), i) for t, i in measured[:10]],
        "states": dict(states),
        "create_errors": Counter(o.error for o in outcomes if o.error),
        "korus_calls": admin.calls(),
        "seed": options.seed,
    }


def table(result: dict[str, Any]) -> str:
    keys = ("bookings", "paid", "completed", "refund_required", "unpaid", "lost",
            "double_orders", "max_orders_per_booking", "stranded_paid", "duplicate_callbacks",
            "max_recovery_seconds", "recovered_bookings", "unrecovered_bookings",
            "drain_seconds", "load_seconds", "worker_kills", "beat_kills", "redis_restarts",
            "process_crashes")
    width = max(len(k) for k in keys)
    lines = [f"{k:<{width}}  {result[k]}" for k in keys]
    lines.append(f"{'states':<{width}}  {result['states']}")
    lines.extend(f"{'crashed':<{width}}  {crash}" for crash in result["crashed"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.bookings < 1:
        parser.error("--bookings must be at least 1")
    options = Options(bookings=args.bookings, seed=args.seed, json_path=args.json_path)
    result = run(options)
    print(table(result))
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    # A run that could not create its bookings proves nothing: it fails too.
    created_all = result["bookings"] == options.bookings and not result["create_errors"]
    healthy = (created_all and result["lost"] == 0 and result["double_orders"] == 0
               and result["stranded_paid"] == 0 and result["max_recovery_seconds"] <= 60
               and result["process_crashes"] == 0)
    return 0 if healthy else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        sys.exit(main())
