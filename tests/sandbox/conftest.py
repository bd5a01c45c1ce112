"""Fixtures of the sandbox tests: a fresh sandbox on a free loopback port per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from korus_sandbox.admin import SandboxAdmin
from korus_sandbox.server import Sandbox, SandboxConfig, start_sandbox
from tests.sandbox.helpers import KorusApi, fetch_token


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(SandboxConfig(host="127.0.0.1", port=0)) as sb:
        yield sb


@pytest.fixture
def admin(sandbox: Sandbox) -> Iterator[SandboxAdmin]:
    with SandboxAdmin(sandbox.url) as client:
        yield client


@pytest.fixture
def catalog(admin: SandboxAdmin) -> dict[str, dict[str, Any]]:
    """`/_sandbox/catalog`: product name → offer, tickets, sessions (and form)."""
    return admin.catalog()


@pytest.fixture
def korus(sandbox: Sandbox) -> Iterator[KorusApi]:
    api = KorusApi(sandbox.url, fetch_token(sandbox.token_url))
    yield api
    api.session.close()
