"""Fixtures of the operations tests (sweeper, beat, Sentry, Flower, CLI, deploy)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.receiver import HttpRecorder, recorder


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpRecorder]:
    """A loopback HTTP server recording merchant callbacks and Sentry envelopes."""
    with recorder() as server:
        yield server
