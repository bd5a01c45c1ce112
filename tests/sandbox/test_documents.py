"""Beneficiaries, documents' downloadableAt, temporary URLs and the PDF behind them."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from korus_sandbox.admin import SandboxAdmin
from tests.sandbox.helpers import KorusApi, violation_paths
from tests.support.waits import wait_until

Catalog = dict[str, dict[str, Any]]
BENEFICIARY = {"firstname": "Grace", "lastname": "Hopper", "dateOfBirth": "1906-12-09"}


def _documents(korus: KorusApi, order: dict[str, Any]) -> list[dict[str, Any]]:
    response = korus.get(order["@id"] + "/documents")
    assert response.status_code == 200, response.text
    return list(response.json()["member"])


def _link(korus: KorusApi, document_iri: str, **headers: str) -> requests.Response:
    return korus.patch(document_iri, {}, headers=headers)


def test_documents_of_ordinary_tickets_are_downloadable_at_once(
    korus: KorusApi, catalog: Catalog
) -> None:
    order = korus.order_one(catalog["Day Pass"])
    (document,) = _documents(korus, order)
    assert document["@id"] == order["documents"][0]
    assert document["downloadableAt"] <= order["createdAt"]
    response = _link(korus, document["@id"], **{"Accept-Language": "en-GB,en;q=0.8"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@id"] == document["@id"]
    assert body["id"] == document["id"]
    assert body["cachedLanguage"] == "en"
    expires = int(parse_qs(urlsplit(body["temporaryUrl"]).query)["Expires"][0])
    assert 1790 <= expires - time.time() <= 1801


def test_named_tickets_wait_for_their_beneficiary(korus: KorusApi, catalog: Catalog) -> None:
    answered = korus.order_one(catalog["Named Festival Pass"])
    order = korus.get(answered["@id"]).json()  # items and tickets with their real IRIs
    ticket = order["items"][0]["tickets"][0]
    assert ticket["status"] == "waiting_beneficiary_data"
    assert ticket["requiredBeneficiaryFields"] == ["firstname", "lastname", "dateOfBirth"]
    assert ticket["beneficiary"] is None
    assert ticket["beneficiaryAmendable"] is True
    assert ticket["beneficiaryDesignationDeadline"]
    document = order["documents"][0]
    assert violation_paths(_link(korus, document)) == ["beneficiary"]

    partial = korus.patch(ticket["@id"], {"beneficiary": {"firstname": "Grace"}})
    assert set(violation_paths(partial)) == {"beneficiary.lastname", "beneficiary.dateOfBirth"}
    bad_date = korus.patch(ticket["@id"], {"beneficiary": {**BENEFICIARY, "dateOfBirth": "9/12"}})
    assert violation_paths(bad_date) == ["beneficiary.dateOfBirth"]
    wrong_type = korus.patch(
        ticket["@id"], {"beneficiary": BENEFICIARY}, headers={"Content-Type": "application/json"}
    )
    assert wrong_type.status_code == 415

    done = korus.patch(ticket["@id"], {"beneficiary": BENEFICIARY})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "validated"
    assert done.json()["beneficiary"]["lastname"] == "Hopper"
    assert korus.get(order["@id"]).json()["items"][0]["tickets"][0]["status"] == "validated"
    assert _link(korus, document).status_code == 200


def test_beneficiary_patch_of_an_unknown_ticket_is_404(korus: KorusApi, catalog: Catalog) -> None:
    answered = korus.order_one(catalog["Named Festival Pass"])
    ticket = korus.get(answered["@id"]).json()["items"][0]["tickets"][0]
    assert korus.patch(ticket["@id"] + "0", {"beneficiary": BENEFICIARY}).status_code == 404


def test_late_documents_are_refused_until_downloadable_at(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    admin.configure(documents_delay_seconds=1.0)
    order = korus.order_one(catalog["Late Documents Tour"])
    (document,) = _documents(korus, order)
    assert document["downloadableAt"] > order["createdAt"]
    early = _link(korus, document["@id"])
    assert early.status_code == 422
    assert violation_paths(early) == ["downloadableAt"]
    assert wait_until(lambda: _link(korus, document["@id"]).status_code == 200, timeout=5)


def test_the_temporary_url_serves_a_real_pdf_without_auth(
    korus: KorusApi, catalog: Catalog
) -> None:
    order = korus.order_one(catalog["Day Pass"])
    url = _link(korus, order["documents"][0]).json()["temporaryUrl"]
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-1.4")
    assert response.content.rstrip().endswith(b"%%EOF")
    assert order["items"][0]["tickets"][0]["voucher"].encode() in response.content
    # The xref offsets are right: each points at its "n 0 obj".
    pdf = response.content
    xref = pdf[int(pdf.rsplit(b"startxref", 1)[1].split()[0]) :]
    offsets = [int(line.split()[0]) for line in xref.splitlines()[3:8]]
    assert [pdf[o : o + 7] for o in offsets] == [f"{n} 0 obj".encode() for n in range(1, 6)]


def test_a_tampered_or_lapsed_url_is_403(
    korus: KorusApi, catalog: Catalog, admin: SandboxAdmin
) -> None:
    order = korus.order_one(catalog["Day Pass"])
    url = _link(korus, order["documents"][0]).json()["temporaryUrl"]
    assert requests.get(url.replace("Signature=", "Signature=0"), timeout=5).status_code == 403
    assert requests.get(url.split("?")[0], timeout=5).status_code == 403
    later = url.replace("Expires=", "Expires=9")
    assert requests.get(later, timeout=5).status_code == 403
    admin.configure(document_url_lifetime_seconds=0.5)
    short = _link(korus, order["documents"][0]).json()["temporaryUrl"]
    assert wait_until(lambda: requests.get(short, timeout=5).status_code == 403, timeout=4)


def test_documents_of_an_unknown_order_are_404(korus: KorusApi) -> None:
    missing = "/v1/booking/orders/0190f0f0-0000-7000-8000-000000000000"
    assert korus.get(missing + "/documents").status_code == 404
    assert _link(korus, missing + "/documents/x").status_code == 404
