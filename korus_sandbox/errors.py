"""Korus-shaped error answers.

Route code raises `ApiError` (400/401/403/404/405/409/413/415/...) or `ViolationsError`
(422 ConstraintViolationList); the server turns them into the bodies `korus-api.md`
documents. Nothing else ever reaches the client: an unexpected exception becomes a
Korus-shaped 500 without a stack trace (and is logged, because it is a sandbox bug).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

# Documented by Korus (korus-api.md): ordering an expired reservation.
RESERVATION_EXPIRED_CODE = "d53a91b0-def3-426a-83d7-269da7ab4200"
RESERVATION_EXPIRED_MESSAGE = "La réservation a expiré"
# The sandbox's own rule for a second order of a reservation (Korus documents no answer):
# deliberately not a UUID, so nobody mistakes it for a Korus code. The worker ignores it.
SANDBOX_ALREADY_ORDERED_CODE = "sandbox-rule:already-ordered"
# Sandbox codes (Korus documents none for these).
NOT_BLANK_CODE = "c1051bb4-d103-4f74-8988-acbcafc7fdc3"  # Symfony NotBlank
INVALID_IRI_CODE = "4cf2f4e1-6d39-4b7c-9b0e-2f0a5d8c3a11"
NOT_ENOUGH_AVAILABILITY_CODE = "8a1b2c3d-4e5f-4a6b-9c7d-0e1f2a3b4c5d"
QUANTITY_MISMATCH_CODE = "5b7c9d1e-2f3a-4b5c-8d6e-7f8a9b0c1d2e"
INVALID_VALUE_CODE = "2e3f4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b"
TOO_LONG_CODE = "d94b19cc-114f-4f44-9cc4-4138e80a87b9"  # Symfony Length (too long)
NOT_DOWNLOADABLE_CODE = "7c8d9e0f-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
BENEFICIARY_MISSING_CODE = "3f4a5b6c-7d8e-4f9a-8b1c-2d3e4f5a6b7c"


def reason(status: int) -> str:
    """The HTTP reason phrase of `status` ("Unprocessable Entity" for 422)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass(frozen=True)
class Violation:
    property_path: str
    message: str
    code: str

    def to_json(self) -> dict[str, str]:
        return {"propertyPath": self.property_path, "message": self.message, "code": self.code}


@dataclass
class ApiError(Exception):
    """A non-422 error answer. `headers` are added to the response (Retry-After, Allow)."""

    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status}: {self.detail}")


@dataclass
class ViolationsError(Exception):
    """A 422 ConstraintViolationList answer."""

    violations: list[Violation]

    def __post_init__(self) -> None:
        super().__init__("; ".join(f"{v.property_path}: {v.message}" for v in self.violations))


def error_body(status: int, detail: str, instance: str | None) -> dict[str, Any]:
    """The documented 400/401/403/404 body (used for every non-422 error)."""
    return {
        "@context": "/contexts/Error",
        "@id": f"/v1/errors/{status}",
        "@type": "Error",
        "title": "An error occurred",
        "detail": detail,
        "status": status,
        "type": f"/errors/{status}",
        "description": detail,
        "instance": instance,
    }


def violations_body(violations: Sequence[Violation]) -> dict[str, Any]:
    """The documented 422 ConstraintViolationList body."""
    detail = "\n".join(f"{v.property_path}: {v.message}" for v in violations)
    first_code = violations[0].code if violations else INVALID_VALUE_CODE
    return {
        "@context": "/contexts/ConstraintViolationList",
        "@id": f"/validation_errors/{first_code}",
        "@type": "ConstraintViolationList",
        "status": 422,
        "violations": [v.to_json() for v in violations],
        "detail": detail,
        "description": detail,
        "type": f"/validation_errors/{first_code}",
        "title": "An error occurred",
    }
