"""The scrubber: personal data and credentials masked in values and free text.

It drops values under sensitive keys (names, emails, phones, every customer, beneficiary
and ticket-form field: nationality, date and place of birth, formData, tokens, secrets,
Authorization, passwords, DSNs), masks whole customer, beneficiary and formData structures
inside strings (`customer={...}`, `Beneficiary(...)`, `'formData': {...}` in reprs, JSON
and validation errors), and masks email-looking, phone-looking and bearer/JWT-looking text
and `key=value` pairs of the sensitive keys. It cannot recognise a bare name in free text:
code must not put customer names in messages (alerts carry ids only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

FILTERED = "[Filtered]"

# Compared with keys lower-cased and stripped of "_", "-" and spaces.
_SENSITIVE_KEY_PARTS = (
    "firstname", "lastname", "fullname", "surname", "givenname", "username",
    "email", "phone", "mobile", "customer", "beneficiar", "dateofbirth", "birthdate",
    "birthplace", "placeofbirth", "nationality", "formdata",
    "token", "secret", "authorization", "password", "passwd", "dsn", "cookie", "apikey",
    "signature", "credential",
)

_KEY_FRAGMENT = (
    r"first[_-]?name|last[_-]?name|full[_-]?name|sur[_-]?name|given[_-]?name|user[_-]?name"
    r"|e[_-]?mail|phone|mobile|customer|beneficiar\w*|date[_-]?of[_-]?birth|birth[_-]?date"
    r"|place[_-]?of[_-]?birth|birth[_-]?place|nationality|form[_-]?data"
    r"|token|secret|authorization|password|passwd|dsn|cookie|api[_-]?key|signature|credential"
)
# `key=value` / `"key": "value"` inside a string. A value opening a bracket is left alone:
# the pairs inside it are matched one by one (so `customer={'firstname': 'Ada'}` loses
# the name, not the structure).
_PAIR = re.compile(
    rf"""(?ix)
    (?P<key>(?P<q>["']?)[\w-]*(?:{_KEY_FRAGMENT})[\w-]*(?P=q))
    (?P<sep>\s*[:=]\s*)
    (?P<value>"[^"]*"|'[^']*'|(?![\[{{(]|\w+\()[^\s,;&)}}\]]+)
    """
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONES = (
    # International: +33 1 23 45 67 89, +1 (555) 123-4567, +33123456789
    re.compile(r"(?<![\w+])\+\d(?:[\s.()-]{0,2}\d){6,16}(?!\w)"),
    # National (0 then 9 digits, grouped in twos or not): 01 23 45 67 89, 0123456789
    re.compile(r"(?<![\w.:/+-])0\d(?:[\s.-]?\d{2}){4}(?![\w.:/-])"),
    # North American: (555) 123-4567, 555-123-4567
    re.compile(r"(?<![\w.:/+-])(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w.:/-])"),
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_SECRET_LITERALS = re.compile(r"\b(?:whsec|sk_live|sk_test|rk_live|rk_test)_[A-Za-z0-9+/=_]{6,}")


def is_sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    flat = key.lower().replace("_", "").replace("-", "").replace(" ", "")
    return any(part in flat for part in _SENSITIVE_KEY_PARTS)


# Where a whole customer / beneficiary / form structure starts inside a string: a key
# (`customer=`, `'beneficiaries': `, `"formData":`) or a model repr (`Customer(`).
_STRUCTURE = re.compile(
    r"""(?ix)
    (?:(?P<q>["']?)(?:customer|customer[_-]?in|beneficiar\w*|form[_-]?data|form[_-]?fields?)
       (?P=q)\s*[:=]\s*(?P<open>[\[{(]|\w+\())
    | (?P<model>\b(?:Customer|CustomerIn|Beneficiary|FormData|FormField)\()
    """
)
_CLOSING = {"(": ")", "[": "]", "{": "}"}


def _mask_structures(text: str) -> str:
    """Replace the inside of every customer/beneficiary/form structure by FILTERED (bracket
    matching is naive about brackets inside quotes: at worst it masks more)."""
    out: list[str] = []
    position = 0
    while True:
        match = _STRUCTURE.search(text, position)
        if match is None:
            break
        start = match.end()
        opener = text[start - 1]
        depth, end = 1, start
        stack = [_CLOSING[opener]]
        while end < len(text) and stack:
            char = text[end]
            if char in _CLOSING:
                stack.append(_CLOSING[char])
            elif char == stack[-1]:
                stack.pop()
            end += 1
        depth = len(stack)
        out.append(text[position:start])
        out.append(FILTERED)
        if depth == 0:
            out.append(text[end - 1])
            position = end
        else:
            position = len(text)  # unbalanced (cut text): mask to the end
    out.append(text[position:])
    return "".join(out)


def scrub_text(text: str) -> str:
    """Mask personal data and credentials inside free text."""
    # Credentials first: `Authorization: Bearer <token>` must lose the token, not the word.
    text = _mask_structures(text)
    text = _JWT.sub(FILTERED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {FILTERED}", text)
    text = _PAIR.sub(lambda m: f"{m.group('key')}{m.group('sep')}{FILTERED}", text)
    text = _SECRET_LITERALS.sub(FILTERED, text)
    text = _EMAIL.sub("[email]", text)
    for pattern in _PHONES:
        text = pattern.sub("[phone]", text)
    return text


def scrub(value: Any, _depth: int = 0) -> Any:
    """A copy of a JSON-like value with sensitive entries masked (recursive)."""
    if _depth > 40:
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            key: (FILTERED if is_sensitive_key(key) and item not in (None, "", [], {})
                  else scrub(item, _depth + 1))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        # Header lists come as [name, value] pairs.
        if len(value) == 2 and is_sensitive_key(value[0]):
            return [value[0], FILTERED]
        return [scrub(item, _depth + 1) for item in value]
    return value
