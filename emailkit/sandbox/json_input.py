"""Mailpit's lenient JSON input, checked: a body decoded as Go's ``encoding/json`` decodes it into a struct.

Go matches an object's keys to a struct's fields case-insensitively and drops the keys it does not
know; `decode_object` does the same onto a tuple of field names. The typed readers (`string`,
`str_list`, `boolean`) take a value that may be missing (Go's zero value) and refuse any other type
with a `FieldError` naming the field. Nothing here knows HTTP: the routes decide how an error is
answered (Mailpit answers text for most routes and ``{"Error": ...}`` for ``/api/v1/send``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from emailkit.limits import JSONLimitError, read_json

__all__ = ["FieldError", "boolean", "decode_object", "fold", "str_list", "string", "type_error"]


class FieldError(ValueError):
    """Input that cannot be used; `str()` is Mailpit's wording, `field` the field it is about ("" = the body)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def fold(data: Mapping[Any, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Go's case-insensitive key matching onto `fields`; unknown keys dropped, last one wins."""
    by_lower = {f.lower(): f for f in fields}
    result: dict[str, Any] = {}
    for key, value in data.items():
        canonical = by_lower.get(str(key).lower())
        if canonical is not None:
            result[canonical] = value
    return result


def decode_object(body: bytes, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The JSON object in `body` folded onto `fields`; None when the body is empty or ``null``."""
    if not body.strip():
        return None
    try:
        data = read_json(body)  # depth, integer size, lone surrogates: emailkit.limits
    except JSONLimitError as exc:
        raise FieldError(f"invalid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise FieldError("invalid JSON: the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise FieldError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if data is None:  # Go decodes `null` into an empty struct
        return None
    if not isinstance(data, dict):
        raise FieldError(f"invalid JSON: expected an object {{...}}, got {type(data).__name__}")
    return fold(data, fields)


def type_error(field: str, expected: str) -> FieldError:
    """``invalid JSON: field "To" must be an array`` (Go's decoder names the field too)."""
    return FieldError(f'invalid JSON: field "{field}" must be {expected}', field)


def str_list(value: Any, field: str) -> list[str]:
    """An array of strings; missing is ``[]``."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise type_error(field, "an array of strings")
    return value


def string(value: Any, field: str) -> str:
    """A string; missing is ``""``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise type_error(field, "a string")
    return value


def boolean(value: Any, field: str) -> bool:
    """``true`` or ``false``; missing is False."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise type_error(field, "true or false")
    return value
