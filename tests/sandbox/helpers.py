"""A thin authenticated client of the sandbox for tests."""

from __future__ import annotations

from typing import Any

import requests

from tests.support.booking import CUSTOMER, reservation_item

JSON_LD = "application/ld+json"
MERGE_PATCH = "application/merge-patch+json"


def request_token(
    token_url: str,
    client_id: str = "sandbox",
    secret: str = "sandbox",  # noqa: S107
) -> requests.Response:
    """The client-credentials token request, answered as it is."""
    return requests.post(
        token_url,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=5,
    )


def fetch_token(
    token_url: str,
    client_id: str = "sandbox",
    secret: str = "sandbox",  # noqa: S107
) -> str:
    response = request_token(token_url, client_id, secret)
    response.raise_for_status()
    return str(response.json()["access_token"])


class KorusApi:
    """Calls the sandbox's Korus routes the way the worker does (bearer, JSON-LD)."""

    def __init__(self, base_url: str, token: str, timeout: float = 5.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": JSON_LD})

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.get(self.base_url + path, **kwargs)

    def post(self, path: str, body: object, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        headers = {"Content-Type": JSON_LD, **kwargs.pop("headers", {})}
        return self.session.post(self.base_url + path, json=body, headers=headers, **kwargs)

    def patch(self, path: str, body: object, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        headers = {"Content-Type": MERGE_PATCH, **kwargs.pop("headers", {})}
        return self.session.patch(self.base_url + path, json=body, headers=headers, **kwargs)

    # -- booking shortcuts -----------------------------------------------------------

    def reserve(self, items: list[Any], **kwargs: Any) -> requests.Response:
        return self.post("/v1/booking/reservations/_bulk", {"items": items}, **kwargs)

    def reserve_one(self, entry: dict[str, Any], quantity: int = 1) -> dict[str, Any]:
        """Reserve `quantity` tickets of a catalog entry; asserts one reservation came back."""
        response = self.reserve([reservation_item(entry, quantity)])
        assert response.status_code == 201, response.text
        body = response.json()
        assert len(body["reservations"]) == 1, body
        return dict(body["reservations"][0])

    def order(
        self,
        reservations: list[str],
        reference: str = "REF-1",
        customer: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        body = {
            "reservations": reservations,
            "customer": customer or CUSTOMER,
            "externalReference": reference,
        }
        return self.post("/v1/booking/orders/_bulk", body, **kwargs)

    def order_one(self, entry: dict[str, Any], reference: str = "REF-1") -> dict[str, Any]:
        reservation = self.reserve_one(entry)
        response = self.order([reservation["@id"]], reference)
        assert response.status_code == 200, response.text
        return dict(response.json()["orders"][0])

    def available(self, entry: dict[str, Any]) -> int:
        response = self.get(entry["offer"] + "/availability")
        assert response.status_code == 200, response.text
        return int(response.json()["availableQuantity"])


def violation_paths(response: requests.Response) -> list[str]:
    body = response.json()
    assert body["@type"] == "ConstraintViolationList", body
    assert body["status"] == 422
    return [v["propertyPath"] for v in body["violations"]]
