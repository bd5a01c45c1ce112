"""Beneficiaries, order documents, signed temporary URLs and the PDF behind them.

Guarantees:
- `PATCH .../tickets/{t}` merges the beneficiary (merge-patch: null removes a field) and
  answers 422 `beneficiary.<field>` while a required field would stay missing; once
  complete the ticket is `validated`.
- `PATCH .../documents/{d}` answers 422 `downloadableAt` before the document's time,
  422 `beneficiary` while its ticket waits for beneficiary data, otherwise a
  `temporaryUrl` signed with HMAC-SHA256 that lapses `document_url_lifetime_seconds`
  later (Unix time in `Expires=`).
- `GET /_sandbox/files/<doc id>.pdf` serves a real PDF for a valid, unlapsed signature;
  anything else is a 403 (unknown document: 404).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import date
from typing import Any

from korus_sandbox import validation as v
from korus_sandbox.booking_views import render_document, render_order_ticket
from korus_sandbox.errors import (
    BENEFICIARY_MISSING_CODE,
    INVALID_VALUE_CODE,
    NOT_BLANK_CODE,
    NOT_DOWNLOADABLE_CODE,
    ApiError,
    Violation,
    ViolationsError,
)
from korus_sandbox.ids import iso
from korus_sandbox.pdf import ticket_pdf
from korus_sandbox.state import Document, Order, OrderTicket, SandboxState

BENEFICIARY_KEYS = (
    "firstname",
    "lastname",
    "title",
    "nationality",
    "dateOfBirth",
    "placeOfBirth",
    "email",
    "phone",
)
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}")


class UrlSigner:
    """Signs and checks `temporaryUrl`s with a secret drawn when the sandbox starts."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def sign(self, document_id: str, expires: int) -> str:
        message = f"{document_id}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def valid(self, document_id: str, expires: int, signature: str) -> bool:
        return hmac.compare_digest(self.sign(document_id, expires), signature)


def _order(state: SandboxState, order_id: str) -> Order:
    order = state.orders.get(order_id)
    if order is None:
        raise ApiError(404, "Not Found")
    return order


def find_ticket(state: SandboxState, order_id: str, item_id: str, ticket_id: str) -> OrderTicket:
    """The order ticket at that path, or 404. Caller holds the lock."""
    for item in _order(state, order_id).items:
        if item.id == item_id:
            for ticket in item.tickets:
                if ticket.id == ticket_id:
                    return ticket
    raise ApiError(404, "Not Found")


def patch_beneficiary(
    state: SandboxState, path_ids: tuple[str, str, str], body: object
) -> dict[str, Any]:
    """Merge the beneficiary into the ticket; 422 while required fields stay missing."""
    data = v.require_object(body, "")
    raw = data.get("beneficiary")
    if raw is None:
        raise ViolationsError([v.not_blank("beneficiary")])
    patch = v.require_object(raw, "beneficiary")
    for key in BENEFICIARY_KEYS:
        if patch.get(key) is not None:
            v.optional_str(patch, key, f"beneficiary.{key}")
    with state.lock:
        ticket = find_ticket(state, *path_ids)
        merged = dict(ticket.beneficiary or {})
        for key in BENEFICIARY_KEYS:
            if key in patch:
                if patch[key] is None:
                    merged.pop(key, None)
                else:
                    merged[key] = patch[key]
        violations = [
            Violation(f"beneficiary.{name}", "This value should not be blank.", NOT_BLANK_CODE)
            for name in ticket.required_fields
            if not str(merged.get(name, "")).strip()
        ]
        birth = merged.get("dateOfBirth")
        if birth is not None and not _is_date(birth):
            violations.append(
                Violation(
                    "beneficiary.dateOfBirth", "This value is not a valid date.", INVALID_VALUE_CODE
                )
            )
        if violations:
            raise ViolationsError(violations)
        ticket.beneficiary = merged
        return render_order_ticket(ticket)


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _listed(state: SandboxState, order: Order) -> bool:
    """False while the document listing lags behind a young order (sandbox rule)."""
    return order.created_at <= time.time() - state.config.documents_listing_lag_seconds


def list_documents(state: SandboxState, order_id: str) -> list[dict[str, Any]]:
    with state.lock:
        order = _order(state, order_id)
        if not _listed(state, order):
            return []
        return [render_document(document) for document in order.documents]


def get_document(state: SandboxState, order_id: str, document_id: str) -> dict[str, Any]:
    """`GET .../documents/{d}`: the document as listed (404 for an unknown one)."""
    with state.lock:
        order = _order(state, order_id)
        document = next((d for d in order.documents if d.id == document_id), None)
        if document is None or not _listed(state, order):
            raise ApiError(404, "Not Found")
        return render_document(document)


def document_link(
    state: SandboxState,
    signer: UrlSigner,
    ids: tuple[str, str],
    base_url: str,
    accept_language: str | None,
    now: float,
) -> dict[str, Any]:
    """A fresh temporary URL for a document, or 422 (not yet / beneficiary missing)."""
    order_id, document_id = ids
    with state.lock:
        order = _order(state, order_id)
        document = next((d for d in order.documents if d.id == document_id), None)
        if document is None:
            raise ApiError(404, "Not Found")
        if now < document.downloadable_at:
            raise ViolationsError(
                [
                    Violation(
                        "downloadableAt",
                        f"The document is downloadable from {iso(document.downloadable_at)}.",
                        NOT_DOWNLOADABLE_CODE,
                    )
                ]
            )
        if document.ticket.beneficiary_missing:
            raise ViolationsError(
                [
                    Violation(
                        "beneficiary",
                        "The beneficiary of this ticket is missing.",
                        BENEFICIARY_MISSING_CODE,
                    )
                ]
            )
        lifetime = state.config.document_url_lifetime_seconds
    expires = int(now + lifetime)
    signature = signer.sign(document.id, expires)
    return {
        "@id": document.iri,
        "@type": "BookingOrderDocument",
        "id": document.id,
        "temporaryUrl": (
            f"{base_url}/_sandbox/files/{document.id}.pdf?Expires={expires}&Signature={signature}"
        ),
        "cachedLanguage": language_of(accept_language),
    }


def language_of(accept_language: str | None) -> str:
    """The first language of an Accept-Language header (`fr-FR;q=1, en` → `fr`); `fr`,
    the language of Korus' own examples, when there is none."""
    first = (accept_language or "").split(",")[0].split(";")[0].strip().split("-")[0]
    return first.lower() if _LANGUAGE.fullmatch(first) else "fr"


def signed_pdf(
    state: SandboxState,
    signer: UrlSigner,
    file_name: str,
    query: dict[str, list[str]],
    now: float,
) -> bytes:
    """The PDF behind a temporary URL, or 403/404."""
    document_id = file_name.removesuffix(".pdf")
    expires_text = (query.get("Expires") or [""])[0]
    signature = (query.get("Signature") or [""])[0]
    if not file_name.endswith(".pdf") or not expires_text.isdigit() or len(expires_text) > 12:
        raise ApiError(403, "Request has expired or has an invalid signature.")
    expires = int(expires_text)
    if not signer.valid(document_id, expires, signature):
        raise ApiError(403, "The request signature does not match.")
    if now > expires:
        raise ApiError(403, "Request has expired.")
    with state.lock:
        found = state.documents.get(document_id)
        if found is None:
            raise ApiError(404, "Not Found")
        order, document = found
        lines = _pdf_lines(order, document)
    return ticket_pdf(lines)


def _pdf_lines(order: Order, document: Document) -> list[str]:
    ticket = document.ticket
    lines = [
        "Korus sandbox ticket",
        f"Product: {ticket.held.ticket.name} - {order.reservation.offer.product.name}",
        f"Order: {order.reference}",
        f"Voucher: {ticket.voucher}",
        f"Valid on: {iso(ticket.occurs_at)}",
    ]
    if ticket.beneficiary:
        lines.append(
            f"Beneficiary: {ticket.beneficiary.get('firstname', '')} "
            f"{ticket.beneficiary.get('lastname', '')}"
        )
    return lines
