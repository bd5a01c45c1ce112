"""Get the ticket documents of an ordered booking (booking.fetch_documents).

Steps, each safe to repeat: send beneficiary data for tickets that ask for it (a
merge-patch of the same data is harmless), list each order's documents, ask a temporary
URL for those downloadable now, and record them. Documents not yet downloadable park the
booking in `documents_pending`; a short countdown (up to `countdown_max_seconds`) or, for
longer waits, the sweeper at the deadline `downloadableAt` brings the task back: no
worker waits and no long countdown sits in the broker. The step runs under a numbered
claim with a lease (worker.booking.claims): a second message finds it live and stops.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from worker.alerts import alert
from worker.booking import claims
from worker.booking.context import RetryLater, StepContext
from worker.booking.effects import after_transition
from worker.booking.record import Booking, OrderedTicket, TicketDocument
from worker.booking.states import State
from worker.booking.store import Change
from worker.korus.errors import KorusRejectedError
from worker.korus.iris import last_segment

_RESUMABLE = (State.ORDERED, State.AWAITING_BENEFICIARY, State.DOCUMENTS_PENDING)


STEP = "documents"


def _begin(
    booking: Booking,
    *,
    task_id: str | None,
    owner: str | None,
    now: datetime,
    lease: timedelta,
    seen: int | None,
    holder_alive: bool,
) -> Change | None:
    if booking.state not in (*_RESUMABLE, State.FETCHING_DOCUMENTS):
        return None
    claim = claims.take(
        booking,
        STEP,
        task_id=task_id,
        owner=owner,
        now=now,
        lease=lease,
        seen=seen,
        holder_alive=holder_alive,
    )
    if claim is None:
        return None
    if booking.state == State.FETCHING_DOCUMENTS:
        return Change(booking, f"fetching documents again (claim {claim.number})", note=True)
    booking.state = State.FETCHING_DOCUMENTS
    return Change(booking, f"fetching documents (claim {claim.number})")


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
        current = self.ctx.store.load(self.booking_id)
        if current is None:
            return
        held = current.claim if current.claim and current.claim.step == STEP else None
        owner = self.ctx.owner()
        started = self.ctx.store.update(
            self.booking_id,
            lambda b: _begin(
                b,
                task_id=self.task_id,
                owner=owner,
                now=self.ctx.now(),
                lease=timedelta(seconds=self.ctx.settings.order_lease_seconds),
                seen=held.number if held else None,
                holder_alive=self.ctx.owner_alive(held.owner) if held else True,
            ),
            task_id=self.task_id,
            current=current,
        )
        booking = started.booking
        if booking is None:
            return
        if not (refresh and booking.state == State.COMPLETED) and not (
            started.changed and booking.state == State.FETCHING_DOCUMENTS
        ):
            return  # another message holds the live claim, or nothing to fetch
        number = booking.claim.number if booking.claim is not None else None
        try:
            sent = self.send_beneficiaries(booking)
            if sent is None:
                return
            documents = self.collect(booking)
        except BaseException:
            if number is not None:
                self.release(number)  # its retry need not wait for the lease
            raise
        result = self.ctx.store.update(
            self.booking_id, lambda b: _record(b, documents, sent, refresh), task_id=self.task_id
        )
        if result.booking is None:
            return
        after_transition(result.booking, result.entered, self.ctx.enqueue)
        if result.booking.state == State.DOCUMENTS_PENDING:
            self.schedule(documents)

    def release(self, number: int) -> None:
        def transition(booking: Booking) -> Change | None:
            released = claims.release(booking, STEP, number)
            return None if released is None else Change(released, "document step failed", note=True)

        with contextlib.suppress(Exception):  # the lease lapses by itself
            self.ctx.store.update(self.booking_id, transition, task_id=self.task_id)

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
        """Come back at the earliest downloadableAt: a short wait as a broker countdown,
        a longer one from the deadline index (documents_pending is due at it)."""
        waits = [d.downloadable_at for d in documents if not d.temporary_url and d.downloadable_at]
        due: datetime = min(waits) if waits else self.ctx.now()
        countdown = max(1.0, (due - self.ctx.now()).total_seconds() + 0.5)
        if countdown <= self.ctx.settings.countdown_max_seconds:
            raise RetryLater("documents not downloadable yet", countdown)
        # Further away: the sweeper enqueues the task when downloadableAt comes.


def fetch_documents(
    ctx: StepContext, booking_id: str, task_id: str | None, refresh: bool = False
) -> None:
    """Fetch (or, with `refresh`, renew) the booking's document URLs. Idempotent."""
    DocumentStep(ctx, booking_id, task_id).run(refresh)
