"""Get the ticket documents of an ordered booking (booking.fetch_documents).

Steps, each safe to repeat: send beneficiary data for tickets that ask for it (a
merge-patch of the same data is harmless), list each order's documents, ask a temporary
URL for those downloadable now, and record them. Documents not yet downloadable park the
booking in `documents_pending`; a countdown (capped below the broker's visibility
timeout) or the sweeper brings the task back at `downloadableAt`: no worker waits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from worker.alerts import alert
from worker.booking.context import RetryLater, StepContext
from worker.booking.effects import after_transition
from worker.booking.record import Booking, OrderedTicket, TicketDocument
from worker.booking.states import State
from worker.booking.store import Change
from worker.korus.errors import KorusRejectedError
from worker.korus.iris import last_segment

_RESUMABLE = (State.ORDERED, State.AWAITING_BENEFICIARY, State.DOCUMENTS_PENDING)


def _begin(booking: Booking) -> Change | None:
    if booking.state in _RESUMABLE:
        booking.state = State.FETCHING_DOCUMENTS
        return Change(booking, "fetching documents")
    return None


def needs_beneficiary(ticket: OrderedTicket) -> bool:
    return bool(ticket.required_beneficiary_fields) and ticket.status == "waiting_beneficiary_data"


def _park(booking: Booking, state: State, reason: str) -> Change | None:
    if booking.state != State.FETCHING_DOCUMENTS:
        return None
    booking.state = state
    booking.reason = reason
    return Change(booking, reason)


def _record(
    booking: Booking, documents: list[TicketDocument], sent: list[str], refresh: bool
) -> Change | None:
    if booking.state not in (State.FETCHING_DOCUMENTS, State.COMPLETED):
        return None
    if booking.state == State.COMPLETED and not refresh:
        return None
    booking.documents = documents
    booking.beneficiaries_sent = sorted(set(booking.beneficiaries_sent) | set(sent))
    if booking.state == State.COMPLETED:  # a refresh: completed is final, whatever came
        fresh = sum(1 for d in documents if d.temporary_url)
        return Change(booking, f"document URLs refreshed ({fresh}/{len(documents)})", note=True)
    if all(d.temporary_url for d in documents):
        booking.state = State.COMPLETED
        booking.reason = None
        return Change(booking, f"{len(documents)} document(s) ready")
    booking.state = State.DOCUMENTS_PENDING
    waiting = sum(1 for d in documents if not d.temporary_url)
    return Change(booking, f"{waiting} document(s) not downloadable yet")


class DocumentStep:
    def __init__(self, ctx: StepContext, booking_id: str, task_id: str | None) -> None:
        self.ctx = ctx
        self.booking_id = booking_id
        self.task_id = task_id

    def run(self, refresh: bool = False) -> None:
        started = self.ctx.store.update(self.booking_id, _begin, task_id=self.task_id)
        booking = started.booking
        if booking is None:
            return
        if booking.state != State.FETCHING_DOCUMENTS and not (
            refresh and booking.state == State.COMPLETED
        ):
            return
        sent = self.send_beneficiaries(booking)
        if sent is None:
            return
        documents = self.collect(booking)
        result = self.ctx.store.update(
            self.booking_id, lambda b: _record(b, documents, sent, refresh), task_id=self.task_id
        )
        if result.booking is None:
            return
        after_transition(result.booking, result.entered, self.ctx.enqueue)
        if result.booking.state == State.DOCUMENTS_PENDING:
            self.schedule(documents)

    def send_beneficiaries(self, booking: Booking) -> list[str] | None:
        """PATCH beneficiary data where required; None if data is missing (parked)."""
        tickets = [
            (order.id, t)
            for order in booking.orders
            for t in order.tickets
            if needs_beneficiary(t) and t.id not in booking.beneficiaries_sent
        ]
        if not tickets:
            return []
        if len(booking.beneficiaries) < len(tickets):
            given = len(booking.beneficiaries)
            reason = f"{len(tickets)} ticket(s) need beneficiary data; {given} given"
            self.ctx.store.update(
                self.booking_id,
                lambda b: _park(b, State.AWAITING_BENEFICIARY, reason),
                task_id=self.task_id,
            )
            alert("beneficiary_missing", booking.id, reason)
            return None
        sent = []
        for (order_id, ticket), data in zip(tickets, booking.beneficiaries, strict=False):
            self.ctx.korus.set_beneficiary(order_id, ticket.item_id, ticket.id, data)
            sent.append(ticket.id)
        return sent

    def collect(self, booking: Booking) -> list[TicketDocument]:
        now = self.ctx.now()
        documents: list[TicketDocument] = []
        for order in booking.orders:
            for ref in self.ctx.korus.list_documents(order.id):
                document_id = ref.id or last_segment(ref.iri or "")
                doc = TicketDocument(
                    order_id=order.id, document_id=document_id, downloadable_at=ref.downloadable_at
                )
                if doc.downloadable_at is None or doc.downloadable_at <= now:
                    try:
                        url = self.ctx.korus.get_document_url(order.id, document_id)
                    except KorusRejectedError as error:
                        if not (error.not_yet_downloadable or error.beneficiary_missing):
                            raise
                        doc.downloadable_at = doc.downloadable_at or now + timedelta(seconds=5)
                    else:
                        doc.temporary_url = url.temporary_url
                        doc.url_expires_at = url.expires_at
                documents.append(doc)
        return documents

    def schedule(self, documents: list[TicketDocument]) -> None:
        """Come back at the earliest downloadableAt, if that is within the countdown cap."""
        waits = [d.downloadable_at for d in documents if not d.temporary_url and d.downloadable_at]
        due: datetime = min(waits) if waits else self.ctx.now()
        countdown = max(1.0, (due - self.ctx.now()).total_seconds() + 0.5)
        # A countdown held by a worker past the broker's visibility timeout would be
        # delivered a second time; further waits are left to the sweeper.
        cap = self.ctx.settings.visibility_timeout_seconds * 0.8
        if countdown <= cap:
            raise RetryLater("documents not downloadable yet", countdown)
        # Further away than the cap: the sweeper schedules it when downloadableAt comes.


def fetch_documents(
    ctx: StepContext, booking_id: str, task_id: str | None, refresh: bool = False
) -> None:
    """Fetch (or, with `refresh`, renew) the booking's document URLs. Idempotent."""
    DocumentStep(ctx, booking_id, task_id).run(refresh)
