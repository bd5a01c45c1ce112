"""Sentry and logs (worker.observability): what reaches Sentry, and what never does.

Sentry's DSN points at a loopback HTTP recorder, so the tests read the envelopes the SDK
really sends (decompressed per Content-Encoding) rather than trusting a mock.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import sentry_sdk

from tests.ops.support import make_booking, ops_settings
from tests.support.booking import CUSTOMER
from tests.support.deployment import WORKER_SETTINGS
from tests.support.receiver import HttpRecorder
from tests.support.waits import wait_until
from worker.alerts import alert
from worker.app import app
from worker.booking import keys
from worker.booking.record import utcnow
from worker.booking.states import State
from worker.booking.task_names import TaskName
from worker.enqueue import CeleryEnqueuer
from worker.observability.logs import ContextFilter, JsonFormatter, TextFormatter, booking_context
from worker.observability.scrub import scrub_text
from worker.observability.sentry import init_sentry, shutdown_sentry
from worker.observability.wiring import task_started
from worker.processes import Proc

TOKEN = "korus-access-token-5f1d2c9a7b"
SECRET = "s3cr3t-client-secret"
PERSONAL = [CUSTOMER["email"], CUSTOMER["phone"], CUSTOMER["firstname"], CUSTOMER["lastname"]]
BENEFICIARY = {"firstname": "Ada", "lastname": "Lovelace", "nationality": "GB",
               "dateOfBirth": "1815-12-10", "placeOfBirth": "Marylebone",
               "email": "ada@example.org", "phone": "+447700900123"}
FORM_VALUE = "Charles Babbage Jr"  # a ticket form answer (a visitor's name)
SENSITIVE = [*PERSONAL, "Lovelace", "1815-12-10", "Marylebone", "ada@example.org",
             "+447700900123", FORM_VALUE]
ITEMS_WITH_FORM = [{"offer": "/v1/ticketing/catalogs/c/offers/o", "quantity": 1,
                    "ticketSessions": [{"ticket": "/v1/ticketing/tickets/t", "formData": {
                        "form": "/v1/ticketing/forms/f",
                        "fields": [{"field": "/v1/ticketing/forms/f/fields/name",
                                    "value": FORM_VALUE}]}}]}]


@pytest.fixture(scope="module")
def worker_settings(receiver: HttpRecorder) -> dict[str, str]:
    return {**WORKER_SETTINGS, "SENTRY_DSN": receiver.sentry_dsn,
            "SENTRY_ENVIRONMENT": "ops-test"}


@pytest.fixture
def sentry(receiver: HttpRecorder, redis_url: str) -> Iterator[HttpRecorder]:
    """Sentry started in this process against the recorder; stopped afterwards."""
    receiver.clear()
    settings = ops_settings(redis_url, sentry_dsn=receiver.sentry_dsn,
                            sentry_environment="ops-test")
    assert init_sentry(settings, "test")
    yield receiver
    shutdown_sentry()


def flushed(receiver: HttpRecorder) -> list[dict[str, Any]]:
    sentry_sdk.flush(timeout=5)
    return receiver.events()


def test_alert_arrives_once_fingerprinted_per_kind_and_booking(sentry: HttpRecorder) -> None:
    alert("refund_required", "bk_alert1", "money taken but no order", state="refund_required")

    events = wait_until(lambda: flushed(sentry), 10, "the alert event")
    assert len(events) == 1  # the alert's log line does not make a second event
    event = events[0]
    assert event["fingerprint"] == ["booking-alert", "refund_required", "bk_alert1"]
    assert event["level"] == "error"
    assert event["tags"]["booking_id"] == "bk_alert1"
    assert event["tags"]["alert_kind"] == "refund_required"
    assert event["tags"]["role"] == "test"
    assert event["environment"] == "ops-test"
    assert event["extra"]["state"] == "refund_required"


def _booking_with_people(state: State) -> Any:
    """A record naming a customer, a beneficiary and a ticket-form answer."""
    return make_booking(state, now=utcnow(), beneficiaries=[BENEFICIARY], items=ITEMS_WITH_FORM)


def _fail_with_customer_data() -> None:
    customer = dict(CUSTOMER)
    # Its repr names the customer, a beneficiary and a form answer.
    booking = _booking_with_people(State.PAID)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    assert customer and booking and headers
    raise RuntimeError(f"order for {CUSTOMER['email']} ({CUSTOMER['phone']}) refused")


def test_events_carry_no_customer_data_tokens_or_secrets(sentry: HttpRecorder) -> None:
    sentry_sdk.add_breadcrumb(
        category="korus", message=f"token refreshed for {CUSTOMER['email']}",
        data={"customer": CUSTOMER, "access_token": TOKEN, "phone": CUSTOMER["phone"]},
    )
    sentry_sdk.set_user({"id": "merchant-1", "email": CUSTOMER["email"]})
    sentry_sdk.set_extra("customer", CUSTOMER)
    sentry_sdk.set_extra("payload", json.dumps({"customer": CUSTOMER, "items": [1]}))
    sentry_sdk.set_extra("record", repr(_booking_with_people(State.PAID)))
    sentry_sdk.set_extra("document", json.dumps({"beneficiaries": [BENEFICIARY],
                                                 "items": ITEMS_WITH_FORM, "id": "bk_doc"}))
    sentry_sdk.set_extra("beneficiary_fields", {k: v for k, v in BENEFICIARY.items()})
    sentry_sdk.set_extra("client_secret", SECRET)
    sentry_sdk.set_context("request", {"headers": {"Authorization": f"Bearer {TOKEN}"},
                                       "url": "https://shop.example/v1/bookings"})
    sentry_sdk.set_tag("authorization", f"Bearer {TOKEN}")
    sentry_sdk.capture_message(
        f"callback to {CUSTOMER['email']} failed; call {CUSTOMER['phone']} or +1 (555) 123-4567"
    )
    try:
        _fail_with_customer_data()
    except RuntimeError:
        sentry_sdk.capture_exception()

    def both() -> list[dict[str, Any]]:
        events = flushed(sentry)
        return events if len(events) >= 2 else []

    events = wait_until(both, 10, "the message and the exception events")
    raw = sentry.raw_envelopes()
    for value in [*SENSITIVE, TOKEN, SECRET, "555) 123-4567"]:
        assert value.encode() not in raw, value
    # Still useful: what happened, where, for which ids.
    messages = [e.get("message") or e.get("logentry", {}).get("message") for e in events]
    assert "callback to [email] failed; call [phone] or [phone]" in messages
    exception = next(e for e in events if "exception" in e)["exception"]["values"][-1]
    assert exception["type"] == "RuntimeError"
    frame = exception["stacktrace"]["frames"][-1]
    assert frame["function"] == "_fail_with_customer_data"
    assert "vars" not in frame  # locals hold whole records: never sent
    record = next(e for e in events if "record" in e.get("extra", {}))["extra"]["record"]
    assert "bk_ops" in record and "state=<State.PAID" in record  # ids and states survive


def test_without_a_dsn_sentry_stays_off(redis_url: str) -> None:
    assert init_sentry(ops_settings(redis_url), "test") is False
    assert not sentry_sdk.get_client().is_active()


def test_sentry_starts_once_per_process(sentry: HttpRecorder, redis_url: str) -> None:
    client = sentry_sdk.get_client()
    other = ops_settings(redis_url, sentry_dsn="http://other@127.0.0.1:9/2")

    assert init_sentry(other, "worker") is True
    assert sentry_sdk.get_client() is client


@pytest.mark.parametrize(
    "text",
    [
        "id bk_0123456789abcdef01234567 state awaiting_payment total 40.00 eur",
        "at 2026-01-02T10:11:12.123456+00:00 score 1700000000.125 port 127.0.0.1:6379",
        "/v1/ticketing/catalogs/01941f29-7c00-7d82-b082-532b629f6fbe/offers/01941f29",
        "Task booking.reserve[6c2cffe0-0c45-4fc5-9a89-4083d9e88edc] succeeded in 0.25s",
    ],
)
def test_scrubber_keeps_ids_times_and_amounts(text: str) -> None:
    assert scrub_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail grace.hopper@example.co.uk now", "mail [email] now"),
        ("call +33 1 23 45 67 89.", "call [phone]."),
        ("call 01 23 45 67 89 or 0123456789", "call [phone] or [phone]"),
        ("call (555) 123-4567 or 555-123-4567", "call [phone] or [phone]"),
        ("Authorization: Bearer abc.def-ghi_jkl", "Authorization: [Filtered] [Filtered]"),
        ("Customer(firstname='Grace', lastname='Hopper', country='FR', title='Dr')",
         "Customer([Filtered])"),
        ("{'customer': {'first_name': 'Grace'}, 'id': 'bk_1'}",
         "{'customer': {[Filtered]}, 'id': 'bk_1'}"),
        ("id='bk_1' beneficiaries=[Beneficiary(firstname='Ada', placeOfBirth='Marylebone')]",
         "id='bk_1' beneficiaries=[[Filtered]]"),
        ('{"ticket": "/v1/t", "formData": {"fields": [{"value": "Ada"}]}, "state": "paid"}',
         '{"ticket": "/v1/t", "formData": {[Filtered]}, "state": "paid"}'),
        ("nationality=GB dateOfBirth=1815-12-10 place_of_birth='Marylebone'",
         "nationality=[Filtered] dateOfBirth=[Filtered] place_of_birth=[Filtered]"),
        ('{"password":"x","state":"paid"}', '{"password":[Filtered],"state":"paid"}'),
    ],
)
def test_scrubber_masks_personal_data_and_credentials(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def _log_line(formatter: logging.Formatter, emit: Any) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("tests.ops.observability")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_log_lines_carry_the_task_and_booking_ids() -> None:
    tokens = task_started("task-123", TaskName.CREATE_ORDER, ["bk_log1"])
    try:
        line = _log_line(TextFormatter(), lambda log: log.info("calling %s", CUSTOMER["email"]))
    finally:
        for token in reversed(tokens):
            token.var.reset(token)
    assert "booking=bk_log1 task=task-123: calling [email]" in line

    with booking_context("bk_log2"):
        record = json.loads(_log_line(JsonFormatter(), lambda log: log.warning("late")))
    assert record["booking_id"] == "bk_log2" and record["task_id"] == "-"
    assert record["message"] == "late" and record["level"] == "WARNING"

    line = _log_line(TextFormatter(), lambda log: log.info("idle"))
    assert "booking=- task=-: idle" in line


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_logged_tracebacks_are_scrubbed_too(formatter: logging.Formatter) -> None:
    def fail(log: logging.Logger) -> None:
        try:
            _fail_with_customer_data()
        except RuntimeError:
            log.exception("order failed for %r", CUSTOMER)

    output = _log_line(formatter, fail)
    assert "RuntimeError" in output and "_fail_with_customer_data" in output
    for value in SENSITIVE:
        assert value not in output


def test_a_failing_task_in_a_real_worker_reaches_sentry_without_customer_data(
    worker: Proc, receiver: HttpRecorder, redis_url: str
) -> None:
    """A corrupt record makes booking.reserve raise a validation error that quotes the
    record (customer included) in its message and frame variables; Sentry gets the
    error, tagged with the booking and task, scrubbed."""
    receiver.clear()
    booking = _booking_with_people(State.RECEIVED)
    document = json.loads(booking.to_json())
    del document["created_at"]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.hset(keys.booking(booking.id),
                mapping={"version": 1, "state": "received", "json": json.dumps(document)})
    client.close()

    CeleryEnqueuer(app).reserve(booking.id)

    def failure() -> list[dict[str, Any]]:
        return [e for e in receiver.events() if e.get("tags", {}).get("booking_id") == booking.id
                and "exception" in e]

    event = wait_until(failure, 20, "the task failure event")[0]
    assert event["exception"]["values"][-1]["type"] == "ValidationError"
    assert event["tags"]["celery_task_id"]
    assert event["tags"]["role"] == "worker"
    assert event["environment"] == "ops-test"
    assert event["extra"]["celery-job"]["task_name"] == TaskName.RESERVE
    raw = receiver.raw_envelopes()
    assert b"created_at" in raw  # the error itself is there
    for value in SENSITIVE:
        assert value.encode() not in raw, value
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames and not [f for f in frames if "vars" in f]  # the record in locals stays
