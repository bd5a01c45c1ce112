"""Fixtures of the Korus client tests: a scripted local server, the sandbox, clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
import redis

from tests.korus.scripted_server import ScriptedServer
from worker.korus import KorusClient, SharedTokenProvider, StaticTokenProvider

if TYPE_CHECKING:
    from korus_sandbox.admin import SandboxAdmin
    from korus_sandbox.server import Sandbox

@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    from korus_sandbox.server import SandboxConfig, start_sandbox

    running = start_sandbox(
        SandboxConfig(
            port=0,
            hold_seconds=900.0,
            client_id="sandbox",
            client_secret="sandbox",
            token_lifetime_seconds=1800.0,
            documents_delay_seconds=10.0,
        )
    )
    yield running
    running.stop()


@pytest.fixture
def admin(sandbox: Sandbox) -> Iterator[SandboxAdmin]:
    """The sandbox admin, reset before the test and with no faults after it."""
    from korus_sandbox.admin import SandboxAdmin

    sandbox_admin = SandboxAdmin(sandbox.url)
    sandbox_admin.reset()
    sandbox_admin.clear_faults()
    sandbox_admin.configure(
        hold_seconds=900.0, token_lifetime_seconds=1800.0, documents_delay_seconds=10.0
    )
    yield sandbox_admin
    sandbox_admin.clear_faults()
    sandbox_admin.close()


@pytest.fixture
def tokens(sandbox: Sandbox, redis_client: redis.Redis) -> SharedTokenProvider:
    return SharedTokenProvider(redis_client, sandbox.token_url, "sandbox", "sandbox", None)


@pytest.fixture
def client(sandbox: Sandbox, admin: SandboxAdmin, tokens: SharedTokenProvider) -> KorusClient:
    return KorusClient(sandbox.url, tokens, read_timeout=5.0)


@pytest.fixture
def fast_client(sandbox: Sandbox, admin: SandboxAdmin, tokens: SharedTokenProvider) -> KorusClient:
    """A client whose read timeout (0.5 s) is shorter than the faults' timeout_seconds."""
    return KorusClient(sandbox.url, tokens, read_timeout=0.5)


@pytest.fixture
def catalog(admin: SandboxAdmin) -> dict[str, Any]:
    """{product name: {offer, tickets, sessions, form?}} of the seeded catalog."""
    return admin.catalog()


def static_client(url: str, token: str) -> KorusClient:
    return KorusClient(url, StaticTokenProvider(token), read_timeout=2.0)
