"""Hypothesis strategies from the JSON Schemas of /openapi.json (the subset pydantic emits).

Small on purpose: `$ref`, `anyOf`/`oneOf`/`allOf`, `enum`/`const`, objects (required,
optional, `additionalProperties: false`), arrays, strings (length, `pattern`), integers,
numbers, booleans and null. Arrays are capped at a few items so bodies stay small.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

MAX_ITEMS = 3

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


class SchemaStrategies:
    def __init__(self, components: dict[str, Any]) -> None:
        self.components = components

    def ref(self, name: str) -> st.SearchStrategy[Any]:
        return self.build({"$ref": f"#/components/schemas/{name}"})

    def build(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return st.deferred(lambda: self.build(self.components[name]))
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        for combinator in ("anyOf", "oneOf"):
            if combinator in schema:
                return st.one_of([self.build(option) for option in schema[combinator]])
        if "allOf" in schema:
            return self.build(schema["allOf"][0])
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self.build({**schema, "type": k}) for k in kind])
        builder = {
            "object": self._object,
            "array": self._array,
            "string": self._string,
            "integer": self._integer,
            "number": lambda s: st.floats(allow_nan=False, allow_infinity=False),
            "boolean": lambda s: st.booleans(),
            "null": lambda s: st.none(),
        }.get(kind or "")
        return builder(schema) if builder else json_values

    def _object(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: self.build(v) for k, v in properties.items() if k in required}
        optional = {k: self.build(v) for k, v in properties.items() if k not in required}
        if not properties and schema.get("additionalProperties") not in (False, None):
            return st.dictionaries(st.text(max_size=10), json_values, max_size=3)
        return st.fixed_dictionaries(fixed, optional=optional)

    def _array(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", MAX_ITEMS), max(low, MAX_ITEMS))
        return st.lists(self.build(schema.get("items", {})), min_size=low, max_size=high)

    def _string(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        low = schema.get("minLength", 0)
        high = schema.get("maxLength")
        if "pattern" in schema:
            strings = st.from_regex(schema["pattern"], fullmatch=True)
            return strings.filter(lambda s: low <= len(s) <= (high or len(s)))
        return st.text(min_size=low, max_size=min(high or 40, 60))

    def _integer(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        low = schema.get("minimum")
        high = schema.get("maximum")
        if "exclusiveMinimum" in schema:
            low = schema["exclusiveMinimum"] + 1
        if "exclusiveMaximum" in schema:
            high = schema["exclusiveMaximum"] - 1
        return st.integers(min_value=low, max_value=high)
