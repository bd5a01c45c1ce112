"""Structural comparison of JSON answers with the documented Korus examples.

`drift(examples, actual)` lists every place where `actual` differs from the examples in
structure (keys, nesting, JSON types), never in values. Several example instances of one
place (the elements of a list, or several files) form its schema: a key present in all
of them is required, a key present in some is allowed, and a value may take any JSON
type the instances show (`occursAt` is null for one documented ticket and a string for
the other, so both are allowed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).parent / "korus_examples"


def example(name: str) -> Any:
    """A documented example (copied verbatim from the Korus documentation)."""
    return json.loads((EXAMPLES_DIR / name).read_text(encoding="utf-8"))


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {value!r}")


def drift(examples: list[Any], actual: Any, path: str = "$") -> list[str]:
    """Every structural difference of `actual` from the schema of `examples`."""
    allowed = {json_type(e) for e in examples}
    kind = json_type(actual)
    if kind not in allowed:
        return [f"{path}: {kind}, documented {' or '.join(sorted(allowed))}"]
    if kind == "object":
        objects = [e for e in examples if isinstance(e, dict)]
        keys = set(actual)
        required = set.intersection(*(set(o) for o in objects))
        known = set.union(*(set(o) for o in objects))
        found = [f"{path}: missing key {k!r}" for k in sorted(required - keys)]
        found += [f"{path}: undocumented key {k!r}" for k in sorted(keys - known)]
        for key in sorted(keys & known):
            found += drift([o[key] for o in objects if key in o], actual[key], f"{path}.{key}")
        return found
    if kind == "array":
        elements = [item for e in examples if isinstance(e, list) for item in e]
        if not elements:
            return []  # the examples only show an empty list: element shape undocumented
        found = []
        for index, item in enumerate(actual):
            found += drift(elements, item, f"{path}[{index}]")
        return found
    return []
