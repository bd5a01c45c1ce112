"""The state store on a real 3-master Redis Cluster (`REDIS_URL=redis+cluster://...`):
its scripts, the deadline index and the sweeper, the shared Korus token and RedBeat.

The pipeline's end-to-end tests run on the cluster too (test_pipeline.py, fleet
`redis-cluster`); these cover what they do not reach.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from korus_sandbox.server import SandboxConfig, start_sandbox
from tests.factories import RecordingEnqueuer
from tests.ops.support import log_tail, make_booking, make_context, ops_settings
from tests.support.backends import flush_redis
from tests.support.broker import broker_messages
from tests.support.korus import TOKEN_PATH
from tests.support.waits import wait_until
from worker.booking import keys
from worker.booking.record import utcnow
from worker.booking.requests import PaymentEvent
from worker.booking.service import BookingService
from worker.booking.states import State
from worker.booking.store import Change, PaymentWaitingError
from worker.booking.sweep import sweep
from worker.korus.auth import SharedTokenProvider
from worker.processes import beat_proc, service_env
from worker.redis_connect import connect, parse_cluster_url


@pytest.fixture
def cluster(cluster_url: str) -> Iterator[redis.Redis]:
    flush_redis(cluster_url)
    client = connect(cluster_url, decode_responses=True)
    assert isinstance(client, RedisCluster)
    yield client
    client.close()


def test_the_cluster_spreads_slots_over_three_masters(cluster: redis.Redis) -> None:
    assert isinstance(cluster, RedisCluster)
    assert len(cluster.get_primaries()) == 3
    assert cluster.cluster_info()["cluster_state"] == "ok"


def test_keys_of_one_booking_share_a_slot_and_bookings_spread(cluster: redis.Redis) -> None:
    assert isinstance(cluster, RedisCluster)
    slots = set()
    for n in range(20):
        booking_id = f"bk_{n:024x}"
        own = {cluster.keyslot(k(booking_id))
               for k in (keys.booking, keys.timeline, keys.callbacks)}
        assert len(own) == 1
        slots |= own
    nodes = {cluster.get_node_from_key(keys.booking(f"bk_{n:024x}")).name for n in range(20)}
    assert len(slots) > 1 and len(nodes) > 1  # the bookings do not all sit on one node


def test_store_compare_and_set_runs_its_scripts_on_the_cluster(
    cluster: redis.Redis, cluster_url: str
) -> None:
    now = utcnow()
    ctx = make_context(cluster, ops_settings(cluster_url, broker_url="redis://x:1/0"),
                       RecordingEnqueuer(), now)
    booking = make_booking(State.AWAITING_PAYMENT, now=now, expires_in=600)
    assert ctx.store.create(booking, reason="created")
    assert not ctx.store.create(booking, reason="again")  # the script saw it exists

    def cancel(b: Any) -> Change:
        b.state = State.CANCELLED
        return Change(b, "cancelled by test")

    stale = ctx.store.load(booking.id)
    result = ctx.store.update(booking.id, cancel, current=stale)
    assert result.changed and result.booking is not None
    assert result.booking.state == State.CANCELLED
    assert cluster.zscore(keys.DEADLINES, booking.id) is None  # dropped by its script
    assert cluster.ttl(keys.booking(booking.id)) > 0  # closed: retention TTL
    # The callback of the state entered is expected (written after the record here).
    assert cluster.zscore(keys.CALLBACKS_DUE, f"{booking.id}|booking.cancelled") is not None
    # A writer holding the old version is refused by the compare-and-set, re-reads and
    # applies its change to the current record: the cancellation is not overwritten.

    def note(b: Any) -> Change:
        b.alerts.append("noted")
        return Change(b, "noted by test", note=True)

    again = ctx.store.update(booking.id, note, current=stale)
    assert again.booking is not None and again.booking.state == State.CANCELLED
    assert stale is not None and again.booking.version == stale.version + 2
    assert again.booking.alerts == ["noted"]
    assert [e["reason"] for e in ctx.store.timeline(booking.id)] == [
        "created", "cancelled by test", "noted by test"]
    # (The refused stale write left a hint in the awaiting_payment index, by design:
    # indexes are written ahead of the record and readers re-check it.)
    assert [i for i, _ in ctx.store.ids_in_state(State.CANCELLED)] == [booking.id]


def test_payment_guard_and_callback_swap_run_their_scripts_on_the_cluster(
    cluster: redis.Redis, cluster_url: str
) -> None:
    now = utcnow()
    ctx = make_context(cluster, ops_settings(cluster_url, broker_url="redis://x:1/0"),
                       RecordingEnqueuer(), now)
    booking = make_booking(State.AWAITING_PAYMENT, now=now, expires_in=600)
    assert ctx.store.create(booking, reason="created")
    service = BookingService(ctx.store, RecordingEnqueuer(), event_ttl_seconds=60,
                             policy="all_or_nothing")
    success = PaymentEvent(provider="test", event_id="c", kind="succeeded",
                           booking_id=booking.id, payment_id="pi_c", amount_minor=1,
                           currency="eur")
    assert service.record_payment(success) == "enqueued"  # claimed, then kept: two slots
    assert service.record_payment(success) == "duplicate"
    assert ctx.store.pending_payment_events([booking.id]) == {booking.id: ["test:c"]}

    def cancel(b: Any) -> Change:
        b.state = State.CANCELLED
        return Change(b, "cancelled by test")

    def note(b: Any) -> Change:
        return Change(b, "payment noted by test", note=True)

    with pytest.raises(PaymentWaitingError):
        ctx.store.update(booking.id, cancel, unless_payment_waiting=True)
    assert ctx.store.update(booking.id, note, applies_event="test:c").changed
    assert ctx.store.pending_payment_events([booking.id]) == {}

    member = f"{booking.id}|booking.reserved"
    assert ctx.store.callback_swap(booking.id, "booking.reserved", None, "sending", due=5.0)
    assert cluster.zscore(keys.CALLBACKS_DUE, member) == 5.0
    assert ctx.store.callback_swap(booking.id, "booking.reserved", "sending", "done", due=None)
    assert cluster.zscore(keys.CALLBACKS_DUE, member) is None


def test_the_sweeper_claims_due_bookings_from_the_index_on_the_cluster(
    cluster: redis.Redis, cluster_url: str
) -> None:
    now = utcnow()
    enqueue = RecordingEnqueuer()
    ctx = make_context(cluster, ops_settings(cluster_url, broker_url="redis://x:1/0"),
                       enqueue, now)
    due = make_booking(State.AWAITING_PAYMENT, now=now, expires_in=50)
    later = make_booking(State.AWAITING_PAYMENT, now=now, expires_in=600)
    for booking in (due, later):
        assert ctx.store.create(booking, reason="test fixture")

    assert sweep(ctx) == Counter({"cancelled": 1})
    cancelled = ctx.store.load(due.id)
    assert cancelled is not None and cancelled.state == State.CANCELLED
    assert enqueue.calls == [("notify", due.id, {"event": "booking.cancelled"})]
    assert sweep(ctx) == Counter()


def test_workers_share_one_korus_token_through_the_cluster(
    cluster: redis.Redis,
) -> None:
    with start_sandbox(SandboxConfig(port=0)) as sandbox:
        url = sandbox.url + TOKEN_PATH
        first = SharedTokenProvider(cluster, url, "sandbox", "sandbox")
        second = SharedTokenProvider(cluster, url, "sandbox", "sandbox")

        token = first.token()
        assert second.token() == token  # read from the cluster, not requested again
        assert json.loads(cluster.get("bw:korus:token") or "{}")["access_token"] == token
        first.invalidate(token)  # compare-and-delete script on the cluster
        assert cluster.get("bw:korus:token") is None


def test_redbeat_holds_its_lock_in_the_cluster_and_sends_sweeps_to_the_broker(
    cluster: redis.Redis, cluster_url: str, redis_url: str, tmp_path: Path
) -> None:
    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()
    env = service_env(cluster_url, "http://127.0.0.1:9", BROKER_URL=redis_url,
                      SWEEP_INTERVAL_SECONDS="1", BEAT_LOCK_TIMEOUT_SECONDS="5")
    beat = beat_proc(env, log=tmp_path / "beat.log").start()
    try:
        def sweeps() -> int:
            return len(broker_messages(broker, "maintenance"))

        wait_until(lambda: sweeps() >= 2, 30, f"sweeps from beat\n{log_tail(beat.log_path)}")
        ttl = cluster.pttl("bw:redbeat:lock")
        assert 0 < ttl <= 5000
        assert cluster.exists("bw:redbeat:schedule")
        assert not broker.exists("bw:redbeat:lock")  # the lock is in the store, not the broker
        time.sleep(0.1)
    finally:
        beat.stop()
        broker.close()


def test_a_cluster_url_lists_its_seed_nodes_and_credentials() -> None:
    address = parse_cluster_url("rediss+cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2:7001/0")

    assert address.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert (address.username, address.password, address.tls) == ("app", "p@ss", True)
    assert address.seed_url() == "rediss://app:p%40ss@10.0.0.1:7000/0"
    for bad in ("redis+cluster://h:7000/3", "redis+cluster://h", "redis+cluster://h:0"):
        with pytest.raises(ValueError):
            parse_cluster_url(bad)


def test_the_web_front_is_ready_and_reports_metrics_on_the_cluster(
    cluster: redis.Redis, cluster_url: str, redis_url: str
) -> None:
    from falcon import testing

    from tests.support.backends import broker_app
    from worker.booking.deadlines import DeadlinePolicy
    from worker.booking.service import BookingService
    from worker.booking.store import BookingStore
    from worker.enqueue import CeleryEnqueuer
    from worker.http.app import create_app

    celery_app = broker_app(redis_url)
    store = BookingStore(cluster, retention_seconds=3600, deadline_policy=DeadlinePolicy())
    service = BookingService(store, CeleryEnqueuer(celery_app), event_ttl_seconds=3600,
                             policy="all_or_nothing")
    settings = ops_settings(cluster_url, broker_url=redis_url, metrics_token="ops-token")
    client = testing.TestClient(create_app(service, settings, celery_app=celery_app))

    ready = client.simulate_get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json["checks"] == {"redis": "ok", "broker": "ok"}
    metrics = client.simulate_get("/metrics", headers={"Authorization": "Bearer ops-token"})
    assert metrics.status_code == 200
    assert "booking_worker_bookings_scrape_ok 1.0" in metrics.text
    celery_app.close()


def test_settings_select_the_cluster_by_scheme_and_require_a_separate_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from worker.settings import Settings, describe_validation_error

    monkeypatch.delenv("BROKER_URL", raising=False)
    base = {"korus_base_url": "http://127.0.0.1:9", "korus_token": "t"}
    ok = Settings(_env_file=None, redis_url="redis+cluster://10.0.0.1:7000,10.0.0.2:7000",
                  broker_url="redis://10.0.0.3:6379/0", **base)  # type: ignore[call-arg]
    assert ok.effective_broker_url == "redis://10.0.0.3:6379/0"

    cases = {
        "BROKER_URL is required when REDIS_URL is a Redis Cluster": {
            "redis_url": "redis+cluster://10.0.0.1:7000"},
        "REDIS_URL: a Redis Cluster has only database 0": {
            "redis_url": "redis+cluster://10.0.0.1:7000/2", "broker_url": "redis://h:1/0"},
        "BROKER_URL: must start with one of": {
            "redis_url": "redis://h:1/0", "broker_url": "redis+cluster://10.0.0.1:7000"},
    }
    for message, values in cases.items():
        with pytest.raises(ValidationError) as caught:
            Settings(_env_file=None, **values, **base)  # type: ignore[call-arg]
        assert message in describe_validation_error(caught.value), message
