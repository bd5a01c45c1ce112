"""The stored form of a booking record (the `json` field of its hash).

Records are deflated against a preset dictionary and kept as base85 behind `z1:`. The
dictionary is a record skeleton (every field name, the usual empty values, the Korus IRI
prefixes, the state names), so what a record costs is mostly its own ids and times: an
open booking's record goes from ~1.5 KB of JSON to ~320 bytes (~900 with plain zlib and
base64, the older `z:` form), which is what Redis's memory per open booking is made of
(the sweep_scale benchmark). Base85 (RFC 1924's alphabet: no quote, no backslash) is 7 %
shorter than base64 and often moves the value under a smaller jemalloc size class; it
costs ~20 us a record, and deflating against the dictionary with a small window and hash
table takes a quarter of plain zlib's time, so a write costs less than before.

NEVER change RECORD_DICTIONARY: stored records need it to be read. A better dictionary
gets a new prefix (`z2:`) and this one stays for reading. Older forms stay readable:
`z:` (zlib, no dictionary) and plain JSON (always starting with "{").
"""

from __future__ import annotations

import base64
import zlib

COMPRESSED = "z:"  # zlib, no dictionary (read only)
DICTIONARY_V1 = "z1:"  # raw deflate against RECORD_DICTIONARY, base85

# Raw deflate (no zlib header or checksum: the JSON parse checks the result), an 8 KB
# window (the dictionary and a record's first ~4.5 KB reach it), a small hash table.
_WINDOW_BITS = -13
_MEM_LEVEL = 6
_LEVEL = 6

RECORD_DICTIONARY = (
    '{"id":"bk_","external_reference":"","merchant":"default","state":"awaiting_payment","ver'
    'sion":1,"created_at":"2020-01-01T00:00:00Z","updated_at":"2020-01-01T00:00:00Z","items":'
    '[{"offer":"/v1/ticketing/catalogs//offers/","quantity":1,"ticketSessions":[{"ticket":"/v'
    '1/ticketing/catalogs//offers//tickets/","session":"/v1/ticketing/catalogs//sessions/","f'
    'ormData":{"form":"","fields":[{"field":"","value":""}]}}]}],"customer":{"firstname":"","'
    'lastname":"","email":"@","phone":"+","country":"","language":"","title":"","optin":true}'
    ',"beneficiaries":[{"firstname":"","lastname":""}],"callback_url":"https://","language":"'
    '","policy":"all_or_nothing","reservations":[{"id":"","iri":"/v1/booking/reservations/","'
    'expires_at":"2020-01-01T00:00:00Z","total_incl_tax":"0.00","offer":"/v1/ticketing/catalo'
    'gs//offers/"}],"failed_reservations":[],"released_reservations":[],"total_incl_tax":"0.0'
    '0","currency":"eur","reserve_attempts":0,"rescue":false,"payment":{"provider":"stripe","'
    'event_id":"evt_","payment_id":"pi_","amount_minor":0,"currency":"eur","received_at":"202'
    '0-01-01T00:00:00Z"},"pending_payment":null,"extra_payments":[],"order_attempt":{"number"'
    ':1,"task_id":"","started_at":"2020-01-01T00:00:00Z","lease_until":"2020-01-01T00:00:00Z"'
    ',"sent":true,"refused":false,"owner":":"},"order_attempts":0,"orders":[{"id":"","iri":"/'
    'v1/booking/orders/","reference":"","reservation":"/v1/booking/reservations/","total_incl'
    '_tax":"0.00","tickets":[{"id":"","iri":"/v1/booking/orders//items//tickets/","item_id":"'
    '","ticket":"/v1/ticketing/catalogs//offers//tickets/","voucher":"","status":"waiting_ben'
    'eficiary_data","required_beneficiary_fields":[""],"seating":{"seatNumber":"","row":""},"'
    'occurs_at":""}],"document_ids":[""]}],"failed_orders":[],"order_unresolved_since":null,"'
    'documents":[{"order_id":"","document_id":"","downloadable_at":"2020-01-01T00:00:00Z","te'
    'mporary_url":"https://","url_expires_at":"2020-01-01T00:00:00Z","cached_language":""}],"'
    'beneficiaries_sent":[],"documents_missing_since":null,"claim":{"step":"reserve","number"'
    ':1,"task_id":"","owner":":","started_at":"2020-01-01T00:00:00Z","lease_until":"2020-01-0'
    '1T00:00:00Z"},"step_failures":0,"unexpected_failures":0,"retry_at":null,"reason":null,"a'
    'lerts":[]}"state":"received","state":"reserving","state":"awaiting_payment","state":"pai'
    'd","state":"ordering","state":"order_uncertain","state":"ordered","state":"fetching_docu'
    'ments","state":"awaiting_beneficiary","state":"documents_pending","state":"completed","s'
    'tate":"reservation_failed","state":"cancelled","state":"expired","state":"refund_require'
    'd"{"id":"bk_","external_reference":"","merchant":"default","state":"awaiting_payment","v'
    'ersion":2,"created_at":"2020-01-01T00:00:00.000000Z","updated_at":"2020-01-01T00:00:00.0'
    '00000Z","items":[{"offer":"/v1/ticketing/catalogs//offers/","quantity":1,"ticketSessions'
    '":[{"ticket":"/v1/ticketing/catalogs//offers//tickets/"}]}],"customer":{"firstname":"","'
    'lastname":"","email":"","phone":null,"country":null,"language":null,"title":null,"optin"'
    ':null},"beneficiaries":[],"callback_url":null,"language":null,"policy":"all_or_nothing",'
    '"reservations":[{"id":"","iri":"/v1/booking/reservations/","expires_at":"2020-01-01T00:0'
    '0:00Z","total_incl_tax":"0.00","offer":"/v1/ticketing/catalogs//offers/"}],"failed_reser'
    'vations":[],"released_reservations":[],"total_incl_tax":"0.00","currency":"eur","reserve'
    '_attempts":1,"rescue":false,"payment":null,"pending_payment":null,"extra_payments":[],"o'
    'rder_attempt":null,"order_attempts":0,"orders":[],"failed_orders":[],"order_unresolved_s'
    'ince":null,"documents":[],"beneficiaries_sent":[],"documents_missing_since":null,"claim"'
    ':null,"step_failures":0,"unexpected_failures":0,"retry_at":null,"reason":null,"alerts":['
    ']}'
)
_DICTIONARY = RECORD_DICTIONARY.encode()


def compress_json(raw: str) -> str:
    """The stored form of a record's JSON."""
    packer = zlib.compressobj(
        _LEVEL, zlib.DEFLATED, _WINDOW_BITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY
    )
    packed = packer.compress(raw.encode()) + packer.flush()
    return DICTIONARY_V1 + base64.b85encode(packed).decode("ascii")


def decode_record(stored: str) -> str:
    """The record's JSON from any stored form (current, `z:` or plain JSON)."""
    if stored.startswith(DICTIONARY_V1):
        unpacker = zlib.decompressobj(-15, _DICTIONARY)
        raw = unpacker.decompress(base64.b85decode(stored[len(DICTIONARY_V1):]))
        return (raw + unpacker.flush()).decode()
    if stored.startswith(COMPRESSED):
        return zlib.decompress(base64.b64decode(stored[len(COMPRESSED):])).decode()
    return stored
