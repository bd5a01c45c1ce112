"""The booking's models as the Korus client's: the one place the domain crosses to Korus.

The merchant's request is validated into the record's models (worker.booking.record);
the steps hand Korus these typed copies, field by field, and never a dict. What they
send is what the merchant sent, under Korus's names (the same as the merchant API's).
"""

from __future__ import annotations

from worker.booking.record import Beneficiary, Customer, FormData, ReservationItem, TicketSession
from worker.korus import models as korus


def form_data(data: FormData) -> korus.FormData:
    return korus.FormData(
        form=data.form,
        fields=[korus.FormFieldValue(field=f.field, value=f.value) for f in data.fields],
    )


def ticket_session(entry: TicketSession) -> korus.TicketSession:
    return korus.TicketSession(
        ticket=entry.ticket,
        session=entry.session,
        form_data=form_data(entry.form_data) if entry.form_data is not None else None,
    )


def reservation_item(item: ReservationItem) -> korus.ReservationRequestItem:
    return korus.ReservationRequestItem(
        offer=item.offer,
        quantity=item.quantity,
        ticket_sessions=[ticket_session(entry) for entry in item.ticket_sessions],
    )


def reservation_items(items: list[ReservationItem]) -> list[korus.ReservationRequestItem]:
    return [reservation_item(item) for item in items]


def customer(person: Customer) -> korus.Customer:
    return korus.Customer(
        firstname=person.firstname,
        lastname=person.lastname,
        email=person.email,
        phone=person.phone,
        country=person.country,
        language=person.language,
        title=person.title,
        optin=person.optin,
    )


def beneficiary(person: Beneficiary) -> korus.Beneficiary:
    return korus.Beneficiary(
        firstname=person.firstname,
        lastname=person.lastname,
        title=person.title,
        nationality=person.nationality,
        date_of_birth=person.date_of_birth,
        place_of_birth=person.place_of_birth,
        email=person.email,
        phone=person.phone,
    )
