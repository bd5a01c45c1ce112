"""The `sandbox` command: option parsing, fault specs, serving until SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner

from korus_sandbox.command import sandbox
from korus_sandbox.faults import FaultRule, parse_fault_spec
from tests.sandbox.helpers import request_token
from tests.support.korus import TOKEN_PATH
from tests.support.processes import printed_url


def test_fault_specs_parse_into_rules() -> None:
    rule = parse_fault_spec(
        "POST /v1/booking/orders/_bulk:error_rate=0.25,retry_after=3,next=drop|timeout_after_commit"
    )
    assert rule == FaultRule(
        endpoint="POST /v1/booking/orders/_bulk",
        error_rate=0.25,
        retry_after=3.0,
        next=["drop", "timeout_after_commit"],
    )
    assert parse_fault_spec("*:latency_ms=20").latency_ms == 20.0
    assert parse_fault_spec("*:retry_after=none,rate_limit_rate=1").retry_after is None


@pytest.mark.parametrize(
    "spec",
    [
        "no-colon",
        ":error_rate=1",
        "*:error_rate",
        "*:error_rate=lots",
        "*:next=boom",
        "*:drop_rate=0.7,error_rate=0.7",
    ],
)
def test_bad_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"fault|rate|next|number|endpoint"):
        parse_fault_spec(spec)


def test_the_command_refuses_a_fault_on_an_unknown_endpoint() -> None:
    result = CliRunner().invoke(sandbox, ["--port", "0", "--fault", "GET /nowhere:error_rate=1"])
    assert result.exit_code == 2
    assert "unknown endpoint" in result.output


def test_the_command_offers_the_documented_and_varied_shapes_only() -> None:
    result = CliRunner().invoke(sandbox, ["--port", "0", "--shapes", "loose"])
    assert result.exit_code == 2
    assert "'documented'" in result.output and "'varied'" in result.output


def test_python_m_serves_with_its_options_until_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "korus_sandbox",
            "--port",
            "0",
            "--hold-seconds",
            "5",
            "--fault",
            "GET /v1/ticketing/catalogs:latency_ms=1",
            "--client-id",
            "shop",
            "--client-secret",
            "pw",
            "--shapes",
            "varied",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = printed_url(process)
        assert requests.get(url + "/_sandbox/config", timeout=5).json()["hold_seconds"] == 5.0
        faults = requests.get(url + "/_sandbox/faults", timeout=5).json()["faults"]
        assert [f["latency_ms"] for f in faults] == [1.0]
        token = request_token(url + TOKEN_PATH, "shop", "pw")
        assert token.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()
