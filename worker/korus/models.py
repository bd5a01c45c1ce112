"""Typed views of Korus JSON-LD resources (pydantic v2).

Every model keeps unknown fields (`extra="allow"`), takes camelCase or snake_case names,
and treats every field it does not strictly need as optional: Korus may add fields, and
the documentation is silent on many shapes. Money is `Decimal`; datetimes are aware (a
naive one is read as UTC) and any offset is accepted. References to other resources are
IRIs (`/v1/...`) or, when Korus embeds them, objects; `iri_of` reads either.

What the documented examples (`korus-examples/`) require, handled once in `KorusModel`:
- an object-valued field may be `{}`, `[]` (an empty JSON-LD object serialised as an
  array, e.g. `"customer": []`), `null` or missing: `[]` and `null` read as "absent";
- a list-valued field may be `null` or missing: read as `[]`;
- collection keys come plain (`member`) or prefixed (`hydra:member`): both read the same.
Nothing here looks at `@context` or `@type`; `@id` may be a blank node
(`/.well-known/genid/...`), which `Resource.real_iri` never returns.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import parse_qs, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from worker.korus.iris import Ref, iri_of, is_blank_node

HYDRA_PREFIX = "hydra:"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


AwareDatetime = Annotated[dt.datetime, AfterValidator(_aware)]


def _is_list_field(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is list:
        return True
    if origin in (Union, UnionType):
        return any(_is_list_field(arg) for arg in get_args(annotation) if arg is not type(None))
    return False


class KorusModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    @model_validator(mode="before")
    @classmethod
    def _documented_variants(cls, data: Any) -> Any:
        """`hydra:`-prefixed keys, `[]`/`null` for an empty object, `null` for a list."""
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        names: dict[str, bool] = {}
        for name, info in fields.items():
            is_list = _is_list_field(info.annotation)
            names[name] = is_list
            if info.alias:
                names[info.alias] = is_list
        out: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(key, str) and key.startswith(HYDRA_PREFIX):
                plain = key[len(HYDRA_PREFIX) :]
                if plain in names and plain not in data:
                    key = plain
            if key in names:
                if names[key] and value is None:
                    continue  # a null list: the default []
                if not names[key] and isinstance(value, list) and not value:
                    continue  # `[]` for an empty object: absent
            out[key] = value
        return out

    def to_json_body(self) -> dict[str, Any]:
        """The request body Korus expects: camelCase names, no unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Resource(KorusModel):
    """Anything with an `@id` IRI and an `id`."""

    iri: str | None = Field(default=None, alias="@id")
    type_: str | None = Field(default=None, alias="@type")
    id: str | None = None

    @property
    def real_iri(self) -> str | None:
        """`@id` unless it is a blank node: the only IRI a path may be built from."""
        return None if self.iri is None or is_blank_node(self.iri) else self.iri


# -- catalog -------------------------------------------------------------------------


class Catalog(Resource):
    name: str | None = None
    created_at: AwareDatetime | None = None


class Price(KorusModel):
    amount_incl_tax: Decimal | None = None
    original_amount_incl_tax: Decimal | None = None
    amount_excl_tax: Decimal | None = None
    currency: str | None = None


class Product(KorusModel):
    iri: str | None = Field(default=None, alias="@id")
    name: str | None = None


class Ticket(Resource):
    """A ticket of an offer (`offers/{o}/tickets/{t}`, also embedded in offers)."""

    name: str | None = None
    date_access: bool | None = None
    form: Ref | None = None

    @property
    def form_iri(self) -> str | None:
        return iri_of(self.form)


class Offer(Resource):
    date: AwareDatetime | None = None  # a date-only value reads as midnight UTC
    availability_check_required: bool = False
    realtime_price_required: bool = False
    price: Price | None = None
    product: Product | None = None
    tickets: list[Ticket] = Field(default_factory=list)
    available_quantity: int | None = None


class Session(Resource):
    starts_at: AwareDatetime | None = None
    available_quantity: int | None = None


class SessionAvailability(KorusModel):
    session: Ref | None = None
    available_quantity: int | None = None


class Availability(KorusModel):
    available_quantity: int | None = None
    sessions_availability: list[SessionAvailability] = Field(default_factory=list)


class FormField(Resource):
    name: str | None = None
    label: str | None = None
    required: bool = False


class Form(Resource):
    name: str | None = None
    fields: list[FormField] = Field(default_factory=list)


# -- requests --------------------------------------------------------------------------


class FormFieldValue(KorusModel):
    field: str
    value: str


class FormData(KorusModel):
    form: str
    fields: list[FormFieldValue] = Field(default_factory=list)


class TicketSession(KorusModel):
    ticket: str
    session: str | None = None
    form_data: FormData | None = None


class ReservationRequestItem(KorusModel):
    offer: str
    quantity: int = Field(ge=1)
    ticket_sessions: list[TicketSession] = Field(default_factory=list)


class Customer(KorusModel):
    firstname: str
    lastname: str
    email: str
    phone: str | None = None
    country: str | None = None
    language: str | None = None
    title: str | None = None
    optin: bool | None = None


class Beneficiary(KorusModel):
    firstname: str | None = None
    lastname: str | None = None
    title: str | None = None
    nationality: str | None = None
    # A date, or the merchant's `YYYY-MM-DD` text as given (Korus judges it: a 422 names
    # `beneficiary.dateOfBirth`); both are sent as the same text.
    date_of_birth: dt.date | str | None = None
    place_of_birth: str | None = None
    email: str | None = None
    phone: str | None = None


# -- reservations ----------------------------------------------------------------------


class ReservedTicket(KorusModel):
    ticket: Ref | None = None
    session: Ref | None = None
    seating: dict[str, Any] | None = None


class ReservationItem(KorusModel):
    unit_amount_incl_tax: Decimal | None = None
    unit_amount_excl_tax: Decimal | None = None
    offer: Ref | None = None
    product: Ref | None = None
    offer_tickets: list[ReservedTicket] = Field(default_factory=list)


class Reservation(Resource):
    expired: bool = False
    created_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None
    total_amount_incl_tax: Decimal | None = None
    total_amount_excl_tax: Decimal | None = None
    items: list[ReservationItem] = Field(default_factory=list)
    organization: Ref | None = None
    catalog: Ref | None = None
    order: Ref | None = None
    status: str | None = None
    releasable: bool | None = None


class BulkReservationResult(KorusModel):
    reservations: list[Reservation] = Field(default_factory=list)
    # Shapes of failed items are undocumented: kept exactly as Korus sent them.
    failed: list[dict[str, Any]] = Field(default_factory=list, alias="failedReservations")


# -- orders ----------------------------------------------------------------------------


class Seating(KorusModel):
    seat_number: str | None = None
    row: str | None = None
    level: str | None = None
    stand: str | None = None
    stair: str | None = None
    gate: str | None = None


class OrderTicket(Resource):
    ticket: Ref | None = None
    voucher: str | None = None
    occurs_at: AwareDatetime | None = None
    status: str | None = None
    required_beneficiary_fields: list[str] = Field(default_factory=list)
    beneficiary: dict[str, Any] | None = None
    beneficiary_designation_deadline: AwareDatetime | None = None
    beneficiary_amendable: bool | None = None
    seating: Seating | None = None

    @property
    def needs_beneficiary(self) -> bool:
        return self.status == "waiting_beneficiary_data"


class OrderItem(Resource):
    product: Ref | None = None
    unit_amount_incl_tax: Decimal | None = None
    tickets: list[OrderTicket] = Field(default_factory=list)


class Order(Resource):
    created_at: AwareDatetime | None = None
    reference: str | None = None
    external_reference: str | None = None
    connector_reference: str | None = None
    total_amount_incl_tax: Decimal | None = None
    total_amount_excl_tax: Decimal | None = None
    reservation: Ref | None = None
    customer: dict[str, Any] | None = None
    status: str | None = None
    items: list[OrderItem] = Field(default_factory=list)
    documents: list[Ref] = Field(default_factory=list)

    @property
    def reservation_iri(self) -> str | None:
        return iri_of(self.reservation)

    @property
    def document_iris(self) -> list[str]:
        """The documents the order names (real IRIs only: a blank node names nothing)."""
        return [
            iri for iri in (iri_of(doc) for doc in self.documents) if iri and not is_blank_node(iri)
        ]


class BulkOrderResult(KorusModel):
    orders: list[Order] = Field(default_factory=list)
    failed: list[dict[str, Any]] = Field(default_factory=list, alias="failedOrders")


# -- documents -------------------------------------------------------------------------


class DocumentRef(Resource):
    downloadable_at: AwareDatetime | None = None


class DocumentUrl(Resource):
    temporary_url: str
    cached_language: str | None = None
    # When `temporary_url` lapses: read from its `Expires=` Unix time (None if absent).
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _expiry_from_url(self) -> DocumentUrl:
        if self.expires_at is None:
            self.expires_at = url_expiry(self.temporary_url)
        return self


def url_expiry(url: str) -> dt.datetime | None:
    values = parse_qs(urlsplit(url).query).get("Expires")
    if not values:
        return None
    try:
        return dt.datetime.fromtimestamp(int(values[0]), tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
