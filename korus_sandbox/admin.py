"""A small `requests` client of the sandbox admin routes (`/_sandbox/...`).

    admin = SandboxAdmin(sb.url)
    admin.reset(); admin.set_fault("POST /v1/booking/orders/_bulk", next=["drop"])

Every method raises `requests.HTTPError` when the sandbox refuses the call (a bad fault
rule, an unknown setting), so a test never silently runs without the fault it asked for.
"""

from __future__ import annotations

from typing import Any

import requests


class SandboxAdmin:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(self, method: str, path: str, body: object = None) -> Any:
        response = self._session.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, timeout=self.timeout
        )
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Forget reservations, orders, call counts and faults; restore inventory."""
        self._call("POST", "reset")

    def orders(self) -> list[dict[str, Any]]:
        """Every order: id, reference, externalReference, reservation, createdAt, status."""
        return list(self._call("GET", "orders")["orders"])

    def reservations(self) -> list[dict[str, Any]]:
        """Every reservation: id, offer, quantity, status, expiresAt, order."""
        return list(self._call("GET", "reservations")["reservations"])

    def calls(self) -> dict[str, int]:
        """Calls per endpoint, keyed like `"POST /v1/booking/orders/_bulk"`."""
        return {str(k): int(v) for k, v in self._call("GET", "calls").items()}

    def set_fault(self, endpoint: str, **params: Any) -> list[dict[str, Any]]:
        """Install the fault rule of `endpoint` (or `"*"`); returns the rules in force."""
        return list(self._call("PUT", "faults", {"endpoint": endpoint, **params})["faults"])

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def configure(self, **settings: float) -> dict[str, float]:
        """Change hold_seconds, token_lifetime_seconds, documents_delay_seconds or
        document_url_lifetime_seconds; returns the settings in force."""
        return dict(self._call("POST", "config", settings))

    def catalog(self) -> dict[str, dict[str, Any]]:
        """Per product name: offer, tickets, sessions, price, inventory (and form)."""
        return dict(self._call("GET", "catalog"))

    def catalog_keys(self) -> dict[str, str]:
        """Product name → offer IRI."""
        return {name: str(entry["offer"]) for name, entry in self.catalog().items()}

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SandboxAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
