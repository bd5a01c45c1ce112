"""The bounded wait of the tests (every loop in a test is bounded)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    timeout: float = 5.0,
    what: str = "the condition",
    interval: float = 0.1,
) -> T:
    """Poll `check` until it returns something truthy and return that; fail (AssertionError
    naming `what`) after `timeout` seconds. A predicate's True comes back, so
    `assert wait_until(lambda: ..., timeout=3)` reads as well as `x = wait_until(...)`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
