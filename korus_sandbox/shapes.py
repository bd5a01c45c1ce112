"""Answer shapes: the documented ones (default) or, with `--shapes varied`, a random mix
of the variants Korus documents or that a client must tolerate.

`documented`: every answer has the keys, nesting and JSON types of the examples in
`korus-examples/` (booking_views renders them; tests/sandbox/test_documented_shapes.py
checks it). `varied`: each 2xx JSON answer of a `/v1/` route is rewritten, each change
drawn independently, so a client meets all of them over a test run:
- an empty object (`"customer": []`) or a null object-valued field (`beneficiary`,
  `seating`, `order`) comes as `[]`, `{}`, `null` or is left out;
- collection keys take the `hydra:` prefix (`hydra:member`, `hydra:totalItems`,
  `hydra:view`, and `hydra:next`... inside the view);
- timestamps move from `+00:00` to another offset (the same instant);
- objects gain unknown fields.
Values that identify or count something (IRIs, ids, amounts, lists) never change.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from typing import Any

SHAPES = ("documented", "varied")
_COLLECTION_KEYS = ("member", "totalItems", "view")
_VIEW_KEYS = ("first", "last", "previous", "next")
# Object-valued fields that may be empty or null in a documented answer.
_EMPTYABLE = ("customer", "beneficiary", "seating", "order")
_UTC_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$")
_OFFSETS = (timedelta(hours=2), timedelta(hours=1), timedelta(hours=-5), timedelta(minutes=330))


def vary(payload: Any, rng: random.Random) -> Any:
    """A copy of `payload` with a random draw of the tolerated variants applied."""
    return _vary(payload, rng)


def _vary(value: Any, rng: random.Random) -> Any:
    if isinstance(value, list):
        return [_vary(item, rng) for item in value]
    if isinstance(value, str) and _UTC_STAMP.match(value) and rng.random() < 0.5:
        return _shift(value, rng)
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    prefix = "hydra:" if "member" in value and rng.random() < 0.5 else ""
    view_prefix = "hydra:" if rng.random() < 0.5 else ""
    for key, item in value.items():
        if key in _EMPTYABLE and _empty(item):
            choice = rng.randrange(4)
            if choice == 3:
                continue  # left out
            out[key] = ([], {}, None)[choice]
            continue
        new_key = f"{prefix}{key}" if key in _COLLECTION_KEYS else key
        if key == "view" and isinstance(item, dict):
            item = {(f"{view_prefix}{k}" if k in _VIEW_KEYS else k): v for k, v in item.items()}
        out[new_key] = _vary(item, rng)
    if rng.random() < 0.3:
        out["sandboxUnknownField"] = {"note": "a field this client does not know", "n": 1}
    return out


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _shift(stamp: str, rng: random.Random) -> str:
    moment = datetime.fromisoformat(stamp)
    return moment.astimezone(timezone(rng.choice(_OFFSETS))).isoformat()
