"""The Korus client's error tree: one place that says what may be retried.

    KorusError
    ├── KorusTransientError        retry with backoff (timeouts, connection errors, 429, 5xx)
    │   ├── KorusNotSentError      the request never left this process: always safe to retry
    │   ├── KorusOutcomeUnknownError  a state-changing request was (maybe) sent and its answer
    │   │   │                      lost or a 5xx came back: it may have taken effect. Never
    │   │   │                      retry it blindly; reconcile first.
    │   │   └── KorusUnreadableWriteError  a write answered 2xx in a shape we cannot read
    │   └── KorusUnreadableAnswerError  a 2xx answer we cannot read (logged with the field
    │                              paths, alerted): retried like any transient error
    ├── KorusRejectedError         422 ConstraintViolationList (permanent), with violations
    ├── KorusNotFoundError         404
    ├── KorusAuthError             401/403 (after one token refresh)
    └── KorusClientError           other 4xx (permanent)

Every error carries the HTTP method, path, status (if any), Korus request id (if any) and
an excerpt of the body, so a log line or Sentry event tells what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Documented code of "the reservation has expired" (korus-api.md). It is the only 422
# the worker gives a meaning to: what Korus answers to a second order of a reservation
# is not documented, so no other code takes part in a decision.
RESERVATION_EXPIRED_CODE = "d53a91b0-def3-426a-83d7-269da7ab4200"


@dataclass(frozen=True)
class Violation:
    property_path: str
    message: str
    code: str | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Violation:
        return cls(
            property_path=str(raw.get("propertyPath", "")),
            message=str(raw.get("message", "")),
            code=(str(raw["code"]) if raw.get("code") is not None else None),
        )


@dataclass
class KorusError(Exception):
    message: str
    method: str = ""
    path: str = ""
    status: int | None = None
    request_id: str | None = None
    body_excerpt: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f" -> {self.status}" if self.status is not None else ""
        return f"{self.message} ({where}{status})"


@dataclass
class KorusTransientError(KorusError):
    """Retry later. `retry_after` is the server's Retry-After in seconds, if it gave one."""

    retry_after: float | None = None


@dataclass
class KorusNotSentError(KorusTransientError):
    """The request was never sent (connection refused, connect timeout): safe to retry."""


@dataclass
class KorusOutcomeUnknownError(KorusTransientError):
    """A state-changing request may have taken effect (read timeout, reset, 5xx)."""


@dataclass
class KorusUnreadableAnswerError(KorusTransientError):
    """A 2xx answer that does not fit the model, even read as leniently as documented.

    `fields` holds the dotted paths of the fields that failed (never their values, which
    may be personal data). Retried with backoff like a transient error: Korus may answer
    readably next time, and the alert tells a person to look if it does not.
    """

    fields: tuple[str, ...] = ()


@dataclass
class KorusUnreadableWriteError(KorusUnreadableAnswerError, KorusOutcomeUnknownError):
    """The unreadable answer of a state-changing call: the call took effect, so it is
    also an outcome-unknown error (reconcile, never resend blindly)."""


@dataclass
class KorusRejectedError(KorusError):
    """422 ConstraintViolationList. Permanent for this request."""

    violations: list[Violation] = field(default_factory=list)

    def has_path_suffix(self, suffix: str) -> bool:
        return any(v.property_path.endswith(suffix) for v in self.violations)

    @property
    def reservation_expired(self) -> bool:
        """Detected by property path or documented code, never by the translated text."""
        return any(
            v.property_path.endswith(".expired") or v.code == RESERVATION_EXPIRED_CODE
            for v in self.violations
        )

    @property
    def not_yet_downloadable(self) -> bool:
        return self.has_path_suffix("downloadableAt")

    @property
    def beneficiary_missing(self) -> bool:
        return self.has_path_suffix("beneficiary")


@dataclass
class KorusNotFoundError(KorusError):
    """404: the resource does not exist."""


@dataclass
class KorusAuthError(KorusError):
    """401/403 that survived one token refresh, or the token endpoint refused us."""


@dataclass
class KorusClientError(KorusError):
    """Any other 4xx: our request is wrong; retrying will not help."""
