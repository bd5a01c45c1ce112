"""Get the ticket documents of an ordered booking (booking.fetch_documents).

Steps, each safe to repeat: send beneficiary data for tickets that ask for it (a
merge-patch of the same data is harmless), list each order's documents, ask a temporary
URL for those downloadable now, and record them. Documents not yet downloadable park the
booking in `documents_pending`, and ONE mechanism brings the task back (`next_look`): a
short wait (up to `countdown_max_seconds`) is a broker countdown, and the record's
`retry_at` is then only the sweeper's backstop (the countdown's end plus `redrive_after`,
for a lost message); a longer wait is `retry_at` itself, when the sweeper enqueues the
task, and no countdown. No worker waits and no long countdown sits in the broker. A
`downloadableAt` in whole seconds may be rounded down (the sandbox's is; korus-api.md
says nothing of its precision): it is taken as the end of that second, so the task does
not come back a moment early for a 422. The step runs under a numbered
claim with a lease (worker.booking.claims): a second message finds it live and stops.

What the documents are: the document IRIs of the order answer are the expected set. The
listing may lag behind them, so an expected document missing from the listing is looked
up by itself (`GET .../documents/{id}`); one still unknown means "not ready yet", never
"no documents": the booking waits in `documents_pending` and the listing is read again
with backoff (`RetryLater`) for DOCUMENTS_LISTING_WAIT_SECONDS, then a person is alerted.
A booking never completes with zero documents.

Every call is made in the booking's language (Accept-Language); the `cachedLanguage` of
each URL answer is recorded. A beneficiary PATCH needs real ticket and item ids: when
the order answer gave blank nodes, the order is fetched (`GET /v1/booking/orders/{id}`);
if it has none either, the booking is parked in `awaiting_beneficiary` with an alert.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.alerts import alert
from worker.booking import claims
from worker.booking.context import RetryLater, StepContext
from worker.booking.effects import after_transition
from worker.booking.korus_mapping import beneficiary as korus_beneficiary
from worker.booking.ordering import listing_backoff, placed_from
from worker.booking.record import Booking, OrderedTicket, PlacedOrder, TicketDocument
from worker.booking.states import State
from worker.booking.store import Change
from worker.korus.errors import KorusNotFoundError, KorusRejectedError
from worker.korus.iris import last_segment
from worker.korus.models import DocumentRef
from worker.settings import Settings

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


@dataclass(frozen=True)
class Look:
    """When the documents step looks again: a broker countdown of `countdown` seconds
    (None: no countdown, the sweeper enqueues the task at `retry_at`), and the record's
    `retry_at` (behind a countdown, only the sweeper's backstop for a lost message)."""

    countdown: float | None
    retry_at: datetime


def ready_at(document: TicketDocument) -> datetime | None:
    """When a document's URL can be asked for: its downloadableAt, or the end of that
    second when it is given in whole seconds (possibly rounded down)."""
    moment = document.downloadable_at
    if moment is None or moment.microsecond:
        return moment
    return moment + timedelta(seconds=1)


def next_look(
    booking: Booking,
    documents: list[TicketDocument],
    missing: int,
    now: datetime,
    settings: Settings,
    backstop: timedelta,
) -> Look | None:
    """The one wake-up of a `documents_pending` booking (see the module docstring); None
    when the wait for a lagging listing is over (a person is alerted)."""
    if missing or not documents:
        since = booking.documents_missing_since or now
        elapsed = (now - since).total_seconds()
        remaining = settings.documents_listing_wait_seconds - elapsed
        if remaining <= 0:
            return None
        seconds = listing_backoff(elapsed, settings.listing_backoff_cap_seconds, remaining)
    else:
        waits = [ready_at(d) for d in documents if not d.temporary_url]
        due = min((w for w in waits if w is not None), default=now)
        seconds = max(1.0, (due - now).total_seconds() + 0.1)
    back = now + timedelta(seconds=seconds)
    if seconds <= settings.countdown_max_seconds:
        return Look(seconds, back + backstop)
    return Look(None, back)


def _record(
    booking: Booking,
    documents: list[TicketDocument],
    sent: list[str],
    refresh: bool,
    missing: int,
    now: datetime,
    look: Callable[[Booking], Look | None] = lambda b: None,
) -> Change | None:
    """Land what the documents step found. `missing`: expected documents Korus does not
    list yet (the booking waits for them, and `look` says when the step looks again:
    its `retry_at` goes into the record)."""
    if booking.state not in (State.FETCHING_DOCUMENTS, State.COMPLETED):
        return None
    if booking.state == State.COMPLETED and not refresh:
        return None
    booking.beneficiaries_sent = sorted(set(booking.beneficiaries_sent) | set(sent))
    if booking.state == State.COMPLETED:  # a refresh: completed is final, whatever came
        if missing or not documents:
            return None  # a lagging listing must not wipe the documents we have
        booking.documents = documents
        fresh = sum(1 for d in documents if d.temporary_url)
        return Change(booking, f"document URLs refreshed ({fresh}/{len(documents)})", note=True)
    booking.documents = documents
    if not missing and documents and all(d.temporary_url for d in documents):
        booking.state = State.COMPLETED
        booking.reason = None
        booking.documents_missing_since = None
        return Change(booking, f"{len(documents)} document(s) ready")
    booking.state = State.DOCUMENTS_PENDING
    if missing or not documents:
        if booking.documents_missing_since is None:
            booking.documents_missing_since = now
        reason = f"{missing or 'all'} document(s) not listed by Korus yet"
    else:
        booking.documents_missing_since = None
        waiting = sum(1 for d in documents if not d.temporary_url)
        reason = f"{waiting} document(s) not downloadable yet"
    planned = look(booking)
    booking.retry_at = planned.retry_at if planned is not None else None
    return Change(booking, reason)


def _learn_ticket_ids(booking: Booking, fetched: PlacedOrder) -> Change | None:
    """Take the real ticket ids of a fetched order for tickets that came as blank nodes;
    matched by position, and only where the catalog ticket is the same."""
    order = next((o for o in booking.orders if o.id == fetched.id), None)
    if order is None or len(order.tickets) != len(fetched.tickets):
        return None
    learned = 0
    for mine, theirs in zip(order.tickets, fetched.tickets, strict=True):
        if mine.id is None and theirs.id and theirs.item_id and mine.ticket == theirs.ticket:
            mine.id, mine.iri, mine.item_id = theirs.id, theirs.iri, theirs.item_id
            learned += 1
    if not learned:
        return None
    return Change(booking, f"{learned} ticket id(s) read from the order", note=True)


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
            documents, missing = self.collect(booking)
        except BaseException:
            if number is not None:
                self.release(number)  # its retry need not wait for the lease
            raise
        now = self.ctx.now()
        backstop = self.ctx.store.deadline_policy.redrive_after
        plans: list[Look | None] = []

        def look(b: Booking) -> Look | None:
            plans.append(next_look(b, documents, missing, now, self.ctx.settings, backstop))
            return plans[-1]

        result = self.ctx.store.update(
            self.booking_id,
            lambda b: _record(b, documents, sent, refresh, missing, now, look),
            task_id=self.task_id,
        )
        if result.booking is None:
            return
        after_transition(result.booking, result.entered, self.ctx.enqueue)
        if result.changed and result.booking.state == State.DOCUMENTS_PENDING:
            self.wait(result.booking, plans[-1], bool(missing) or not documents)

    def release(self, number: int) -> None:
        def transition(booking: Booking) -> Change | None:
            released = claims.release(booking, STEP, number)
            return None if released is None else Change(released, "document step failed", note=True)

        with contextlib.suppress(Exception):  # the lease lapses by itself
            self.ctx.store.update(self.booking_id, transition, task_id=self.task_id)

    def send_beneficiaries(self, booking: Booking) -> list[str] | None:
        """PATCH beneficiary data where required; None if data is missing (parked)."""
        tickets = self.tickets_needing_data(booking)
        if tickets and any(t.id is None or t.item_id is None for _, t in tickets):
            booking = self.fetch_ticket_ids(booking)
            tickets = self.tickets_needing_data(booking)
            unknown = sum(1 for _, t in tickets if t.id is None or t.item_id is None)
            if unknown:
                reason = f"{unknown} ticket(s) need beneficiary data but Korus gave no ticket id"
                self.await_beneficiary("ticket_ids_missing", reason)
                return None
        if not tickets:
            return []
        if len(booking.beneficiaries) < len(tickets):
            given = len(booking.beneficiaries)
            reason = f"{len(tickets)} ticket(s) need beneficiary data; {given} given"
            self.await_beneficiary("beneficiary_missing", reason)
            return None
        sent = []
        for (order_id, ticket), data in zip(tickets, booking.beneficiaries, strict=False):
            assert ticket.id is not None and ticket.item_id is not None  # checked above
            self.ctx.korus.set_beneficiary(
                order_id,
                ticket.item_id,
                ticket.id,
                korus_beneficiary(data),
                language=booking.language,
            )
            sent.append(ticket.id)
        return sent

    def await_beneficiary(self, kind: str, reason: str) -> None:
        """Park the booking in `awaiting_beneficiary` (compare-and-set) and raise `kind`."""
        self.ctx.store.update(
            self.booking_id,
            lambda b: _park(b, State.AWAITING_BENEFICIARY, reason),
            task_id=self.task_id,
        )
        alert(kind, self.booking_id, reason)

    @staticmethod
    def tickets_needing_data(booking: Booking) -> list[tuple[str, OrderedTicket]]:
        return [
            (order.id, t)
            for order in booking.orders
            for t in order.tickets
            if needs_beneficiary(t) and (t.id is None or t.id not in booking.beneficiaries_sent)
        ]

    def fetch_ticket_ids(self, booking: Booking) -> Booking:
        """GET the orders whose tickets came as blank nodes and keep their real ids."""
        for order in booking.orders:
            if all(t.id is not None for t in order.tickets):
                continue
            fetched = placed_from(self.ctx.korus.get_order(order.id, language=booking.language))
            if fetched is None:
                continue
            result = self.ctx.store.update(
                self.booking_id,
                lambda b, found=fetched: _learn_ticket_ids(b, found),  # type: ignore[misc]
                task_id=self.task_id,
            )
            if result.booking is not None:
                booking = result.booking
        return booking

    def listed(self, booking: Booking, order: PlacedOrder) -> tuple[list[DocumentRef], int]:
        """The order's documents, and how many expected ones Korus does not know yet.

        Expected: the document ids of the order answer. One the listing lacks is asked for
        by itself; a 404 there means "not ready yet"."""
        language = booking.language
        refs = self.ctx.korus.list_documents(order.id, language=language)
        known = {document_id(ref) for ref in refs}
        missing = 0
        for expected in order.document_ids:
            if expected in known:
                continue
            try:
                refs.append(self.ctx.korus.get_document(order.id, expected, language=language))
            except KorusNotFoundError:
                missing += 1
            else:
                known.add(expected)
        return refs, missing

    def collect(self, booking: Booking) -> tuple[list[TicketDocument], int]:
        """The documents with the URLs obtainable now, and the count still missing."""
        now = self.ctx.now()
        documents: list[TicketDocument] = []
        missing = 0
        for order in booking.orders:
            refs, order_missing = self.listed(booking, order)
            missing += order_missing
            for ref in refs:
                doc_id = document_id(ref)
                if not doc_id:
                    continue
                doc = TicketDocument(
                    order_id=order.id, document_id=doc_id, downloadable_at=ref.downloadable_at
                )
                if doc.downloadable_at is None or doc.downloadable_at <= now:
                    try:
                        url = self.ctx.korus.get_document_url(
                            order.id, doc_id, language=booking.language
                        )
                    except KorusRejectedError as error:
                        if not (error.not_yet_downloadable or error.beneficiary_missing):
                            raise
                        doc.downloadable_at = doc.downloadable_at or now + timedelta(seconds=5)
                    else:
                        doc.temporary_url = url.temporary_url
                        doc.url_expires_at = url.expires_at
                        doc.cached_language = url.cached_language
                documents.append(doc)
        return documents, missing

    def wait(self, booking: Booking, look: Look | None, unlisted: bool) -> None:
        """After landing `documents_pending`: the broker countdown of the step's one
        wake-up, if it is a short one (a longer one is the record's `retry_at`, when the
        sweeper enqueues the task); past the wait for a lagging listing, an alert."""
        if look is None:
            since = booking.documents_missing_since or self.ctx.now()
            elapsed = (self.ctx.now() - since).total_seconds()
            alert(
                "documents_missing",
                booking.id,
                f"Korus still lists fewer documents than the order named after {elapsed:.0f}s",
            )
            return
        if look.countdown is not None:
            what = "not listed by Korus" if unlisted else "not downloadable"
            raise RetryLater(f"documents {what} yet", look.countdown)


def document_id(ref: DocumentRef) -> str:
    """A listed document's id: `id`, else the last segment of its real IRI."""
    if ref.id:
        return ref.id
    return last_segment(ref.real_iri) if ref.real_iri else ""


def fetch_documents(
    ctx: StepContext, booking_id: str, task_id: str | None, refresh: bool = False
) -> None:
    """Fetch (or, with `refresh`, renew) the booking's document URLs. Idempotent."""
    DocumentStep(ctx, booking_id, task_id).run(refresh)
