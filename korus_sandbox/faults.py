"""Injected faults: latency, 5xx, 429, timeouts before/after commit, connection drops.

A `FaultRule` targets one endpoint (`"POST /v1/booking/orders/_bulk"`, a route template
as `/_sandbox/calls` names it) or `"*"` (every Korus and token route). For each call the
most specific rule applies (the endpoint's own rule, else `"*"`):

1. its `next` queue, if not empty, gives the fault of this call (consumed in order, one
   per call: deterministic tests use it);
2. otherwise one number drawn from a seeded RNG picks at most one fault by the rates
   (error, rate_limit, timeout_before_commit, timeout_after_commit, drop, in that order);
3. `latency_ms` is added to every call the rule covers.

Kinds: `error` (503) and `rate_limit` (429 with `Retry-After`) answer without applying the
change; `timeout_before_commit` sleeps `timeout_seconds` then answers 504 without applying
it; `timeout_after_commit` applies it, sleeps, then answers 504; `drop` applies it then
closes the connection without an answer; `drop_before_commit` closes without applying.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = (
    "error",
    "rate_limit",
    "timeout_before_commit",
    "timeout_after_commit",
    "drop",
    "drop_before_commit",
)
_RATE_KINDS = (
    ("error_rate", "error"),
    ("rate_limit_rate", "rate_limit"),
    ("timeout_before_commit_rate", "timeout_before_commit"),
    ("timeout_after_commit_rate", "timeout_after_commit"),
    ("drop_rate", "drop"),
)
_NUMBERS = ("latency_ms", "timeout_seconds", *(name for name, _ in _RATE_KINDS))


@dataclass
class FaultRule:
    endpoint: str
    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float | None = 1
    timeout_before_commit_rate: float = 0.0
    timeout_after_commit_rate: float = 0.0
    drop_rate: float = 0.0
    timeout_seconds: float = 30.0
    next: list[str] = field(default_factory=list)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FaultRule:
        """A rule from the `PUT /_sandbox/faults` body; ValueError says what is wrong."""
        unknown = set(data) - {"endpoint", "retry_after", "next", *_NUMBERS}
        if unknown:
            raise ValueError(f"unknown fault parameters: {', '.join(sorted(unknown))}")
        endpoint = data.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ValueError('"endpoint" must be "<METHOD> <route template>" or "*"')
        rule = cls(endpoint=" ".join(endpoint.split()))
        for name in _NUMBERS:
            if name in data:
                setattr(rule, name, _number(name, data[name]))
        if "retry_after" in data:
            raw = data["retry_after"]
            rule.retry_after = None if raw is None else _number("retry_after", raw)
        raw_next = data.get("next", [])
        if not isinstance(raw_next, list) or any(k not in FAULT_KINDS for k in raw_next):
            raise ValueError(f'"next" must be a list of {", ".join(FAULT_KINDS)}')
        rule.next = list(raw_next)
        rates = [getattr(rule, name) for name, _ in _RATE_KINDS]
        if any(rate > 1 for rate in rates) or sum(rates) > 1.000001:
            raise ValueError("fault rates are probabilities: each and their sum at most 1")
        return rule

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "rate_limit_rate": self.rate_limit_rate,
            "retry_after": self.retry_after,
            "timeout_before_commit_rate": self.timeout_before_commit_rate,
            "timeout_after_commit_rate": self.timeout_after_commit_rate,
            "drop_rate": self.drop_rate,
            "timeout_seconds": self.timeout_seconds,
            "next": list(self.next),
        }


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f'"{name}" must be a number >= 0')
    return float(value)


def parse_fault_spec(spec: str) -> FaultRule:
    """`ENDPOINT:key=value,key=value` (the `--fault` option); `next=a|b` lists kinds."""
    endpoint, colon, params = spec.rpartition(":")
    if not colon or not endpoint.strip():
        raise ValueError(f"fault {spec!r}: expected ENDPOINT:key=value,...")
    data: dict[str, Any] = {"endpoint": endpoint}
    for pair in filter(None, (part.strip() for part in params.split(","))):
        key, equals, value = pair.partition("=")
        if not equals:
            raise ValueError(f"fault {spec!r}: {pair!r} is not key=value")
        key = key.strip()
        if key == "next":
            data["next"] = [kind.strip() for kind in value.split("|") if kind.strip()]
        elif key == "retry_after" and value.strip().lower() in ("", "none", "null"):
            data["retry_after"] = None
        else:
            try:
                data[key] = float(value)
            except ValueError:
                raise ValueError(f"fault {spec!r}: {key} needs a number") from None
    return FaultRule.from_mapping(data)


@dataclass(frozen=True)
class FaultDecision:
    """What the server does to one call."""

    latency_seconds: float
    kind: str | None
    retry_after: float | None
    timeout_seconds: float


class FaultBook:
    """The rules in force, and the seeded draws. Thread-safe; never sleeps."""

    def __init__(self, seed: int, known_endpoints: set[str]) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(seed)
        self._rules: dict[str, FaultRule] = {}
        self._known = known_endpoints

    def set(self, rule: FaultRule) -> None:
        """Install (or replace) the rule of `rule.endpoint`."""
        if rule.endpoint != "*" and rule.endpoint not in self._known:
            known = ", ".join(sorted(self._known))
            raise ValueError(f"unknown endpoint {rule.endpoint!r}; use '*' or one of: {known}")
        with self._lock:
            self._rules[rule.endpoint] = rule

    def clear(self) -> None:
        """Remove every rule and restart the RNG from the seed."""
        with self._lock:
            self._rules.clear()
            self._rng = random.Random(self._seed)

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules.values()]

    def decide(self, endpoint: str) -> FaultDecision | None:
        """The fault of one call to `endpoint` (None: serve it normally)."""
        if not self._rules:
            return None
        with self._lock:
            rule = self._rules.get(endpoint) or self._rules.get("*")
            if rule is None:
                return None
            kind: str | None = None
            if rule.next:
                kind = rule.next.pop(0)
            else:
                rates = [(getattr(rule, name), k) for name, k in _RATE_KINDS]
                if any(rate > 0 for rate, _ in rates):
                    draw = self._rng.random()
                    for rate, candidate in rates:
                        if draw < rate:
                            kind = candidate
                            break
                        draw -= rate
        return FaultDecision(rule.latency_ms / 1000.0, kind, rule.retry_after, rule.timeout_seconds)
