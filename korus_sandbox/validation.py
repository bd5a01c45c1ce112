"""Small checks shared by the request parsers, in the API Platform manner Korus follows.

A value of the wrong JSON type is a 400 (`ApiError`) raised at once, naming the attribute;
a missing or semantically wrong value becomes a `Violation` collected by the caller, so
one 422 lists everything wrong with a request.
"""

from __future__ import annotations

from typing import Any

from korus_sandbox.errors import NOT_BLANK_CODE, ApiError, Violation

_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "null",
}


def json_type(value: object) -> str:
    """The JSON name of `value`'s type, as the 400 messages say it."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def wrong_type(path: str, expected: str, value: object) -> ApiError:
    """The 400 for a value of the wrong JSON type."""
    return ApiError(
        400,
        f'The type of the "{path}" attribute must be "{expected}", "{json_type(value)}" given.',
    )


def require_object(value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise wrong_type(path or "body", "object", value)
    return value


def require_list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise wrong_type(path, "array", value)
    return value


def optional_str(data: dict[str, Any], key: str, path: str) -> str | None:
    """The string at `key`, None when absent or null; 400 when of another type."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise wrong_type(path, "string", value)
    return value


def required_str(
    data: dict[str, Any], key: str, path: str, violations: list[Violation]
) -> str | None:
    """The non-blank string at `key`; a NotBlank violation when absent or blank."""
    value = optional_str(data, key, path)
    if value is None or not value.strip():
        violations.append(not_blank(path))
        return None
    return value


def optional_bool(data: dict[str, Any], key: str, path: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise wrong_type(path, "bool", value)
    return value


def required_int(
    data: dict[str, Any], key: str, path: str, violations: list[Violation]
) -> int | None:
    """The integer at `key` (booleans are not integers); NotBlank when absent."""
    value = data.get(key)
    if value is None:
        violations.append(not_blank(path))
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(path, "int", value)
    return value


def not_blank(path: str) -> Violation:
    return Violation(path, "This value should not be blank.", NOT_BLANK_CODE)
