"""Injected faults map to the error tree; an order whose answer was lost is reconcilable."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.korus.test_client_booking import item, reserve_one
from tests.support.booking import KORUS_CUSTOMER
from tests.support.redis_server import free_port
from worker.korus import (
    KorusClient,
    KorusNotSentError,
    KorusOutcomeUnknownError,
    KorusRejectedError,
    KorusTransientError,
    ReservationRequestItem,
    SharedTokenProvider,
)

if TYPE_CHECKING:
    from korus_sandbox.admin import SandboxAdmin

ORDERS = "POST /v1/booking/orders/_bulk"
RESERVATIONS = "POST /v1/booking/reservations/_bulk"
GET_RESERVATION = "GET /v1/booking/reservations/{id}"
# The client gives up after 0.5 s (fast_client); the sandbox holds the answer 1.5 s.
HELD = 1.5


def _available(client: KorusClient, product: dict[str, Any]) -> int:
    """The product's offer's available quantity, as Korus reports it."""
    offer = product["offer"]
    return client.get_availability(offer.split("/offers/")[0], offer).available_quantity


def _orders_for(admin: SandboxAdmin, reference: str) -> list[dict[str, Any]]:
    return [order for order in admin.orders() if order["externalReference"] == reference]


def test_5xx_on_get_is_transient(
    client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin
) -> None:
    reservation = reserve_one(client, catalog["Day Pass"])
    admin.set_fault(GET_RESERVATION, next=["error"])

    with pytest.raises(KorusTransientError) as caught:
        client.get_reservation(reservation)

    assert type(caught.value) is KorusTransientError and caught.value.status == 503
    assert client.get_reservation(reservation).id  # the fault was one call only


def test_a_read_timeout_on_get_is_transient(
    fast_client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin
) -> None:
    reservation = reserve_one(fast_client, catalog["Day Pass"])
    admin.set_fault(GET_RESERVATION, next=["timeout_before_commit"], timeout_seconds=HELD)

    with pytest.raises(KorusTransientError) as caught:
        fast_client.get_reservation(reservation)

    assert not isinstance(caught.value, KorusOutcomeUnknownError | KorusNotSentError)


def test_429_on_post_is_refused_not_unknown_with_retry_after(
    client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin
) -> None:
    admin.set_fault(RESERVATIONS, next=["rate_limit"], retry_after=3)

    with pytest.raises(KorusTransientError) as caught:
        client.reserve([item(catalog["Limited Concert"])])

    assert type(caught.value) is KorusTransientError
    assert caught.value.status == 429 and caught.value.retry_after == 3.0
    assert _available(client, catalog["Limited Concert"]) == 5


def test_5xx_on_create_orders_is_outcome_unknown(
    client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin
) -> None:
    reservation = reserve_one(client, catalog["Day Pass"])
    admin.set_fault(ORDERS, next=["error"])

    with pytest.raises(KorusOutcomeUnknownError) as caught:
        client.create_orders([reservation], KORUS_CUSTOMER, "BW-5XX")

    assert caught.value.status == 503 and caught.value.method == "POST"
    assert client.find_orders("BW-5XX") == []  # reconciliation: this 503 ordered nothing


def test_timeout_after_commit_leaves_an_order_that_find_orders_finds(
    fast_client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin
) -> None:
    reservation = reserve_one(fast_client, catalog["Day Pass"])
    admin.set_fault(ORDERS, next=["timeout_after_commit"], timeout_seconds=HELD)

    started = time.monotonic()
    with pytest.raises(KorusOutcomeUnknownError):
        fast_client.create_orders([reservation], KORUS_CUSTOMER, "BW-COMMITTED")
    assert time.monotonic() - started < HELD  # our read timeout ended the wait

    (recorded,) = _orders_for(admin, "BW-COMMITTED")
    (found,) = fast_client.find_orders("BW-COMMITTED")
    assert found.id == recorded["id"] and found.reservation_iri == reservation
    with pytest.raises(KorusRejectedError) as again:  # why a blind second POST is wrong
        fast_client.create_orders([reservation], KORUS_CUSTOMER, "BW-COMMITTED")
    assert again.value.status == 422 and not again.value.reservation_expired


def test_timeout_before_commit_is_outcome_unknown_and_orders_nothing(
    fast_client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin
) -> None:
    reservation = reserve_one(fast_client, catalog["Day Pass"])
    admin.set_fault(ORDERS, next=["timeout_before_commit"], timeout_seconds=HELD)

    with pytest.raises(KorusOutcomeUnknownError):
        fast_client.create_orders([reservation], KORUS_CUSTOMER, "BW-NOT-COMMITTED")

    assert _orders_for(admin, "BW-NOT-COMMITTED") == []
    assert fast_client.find_orders("BW-NOT-COMMITTED") == []
    (order,) = fast_client.create_orders([reservation], KORUS_CUSTOMER, "BW-NOT-COMMITTED").orders
    assert order.reservation_iri == reservation


@pytest.mark.parametrize(("fault", "committed"), [("drop", True), ("drop_before_commit", False)])
def test_a_dropped_connection_is_outcome_unknown(
    client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin, fault: str, committed: bool
) -> None:
    reservation = reserve_one(client, catalog["Day Pass"])
    admin.set_fault(ORDERS, next=[fault])

    with pytest.raises(KorusOutcomeUnknownError):
        client.create_orders([reservation], KORUS_CUSTOMER, "BW-DROPPED")

    assert len(client.find_orders("BW-DROPPED")) == (1 if committed else 0)
    assert len(_orders_for(admin, "BW-DROPPED")) == (1 if committed else 0)


def test_outcome_unknown_reservation_may_hold_inventory(
    fast_client: KorusClient, catalog: dict[str, Any], admin: SandboxAdmin
) -> None:
    concert = catalog["Limited Concert"]
    admin.set_fault(RESERVATIONS, next=["timeout_after_commit"], timeout_seconds=HELD)

    with pytest.raises(KorusOutcomeUnknownError):
        fast_client.reserve([item(concert, quantity=2)])

    assert _available(fast_client, concert) == 3


def test_connection_refused_is_not_sent(sandbox: object, tokens: SharedTokenProvider) -> None:
    tokens.token()  # a valid token, so only the closed port can fail the call
    closed = KorusClient(f"http://127.0.0.1:{free_port()}", tokens, connect_timeout=1.0)

    with pytest.raises(KorusNotSentError):
        closed.create_orders(["/v1/booking/reservations/x"], KORUS_CUSTOMER, "BW-REFUSED")
    with pytest.raises(KorusNotSentError):
        closed.reserve([ReservationRequestItem(offer="/o", quantity=1)])
