"""Checks for text that arrives from outside: printable Unicode only, bounded JSON nesting.

Both database backends must store what one accepts: PostgreSQL refuses NUL in text and
any encoder refuses lone surrogates, so such text is rejected here, where requests are
parsed, with a 400-class InvalidInputError instead of failing later in the database.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from sightscan.errors import InvalidInputError

MAX_JSON_DEPTH = 32
# Tab, newline and carriage return are ordinary whitespace in free text; every other
# control character (Cc, NUL included) and every lone surrogate (Cs) is refused.
_ALLOWED_CONTROLS = frozenset("\t\n\r")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})


def check_text(value: str, what: str) -> str:
    """`value` when it is well-formed printable text; InvalidInputError naming `what` otherwise."""
    for position, char in enumerate(value):
        if char in _ALLOWED_CONTROLS:
            continue
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise InvalidInputError(
                f"expected printable text in {what}, got code point U+{ord(char):04X} "
                f"at position {position}"
            )
    return value


def _check_model_text(value: str) -> str:
    try:
        return check_text(value, "the field")
    except InvalidInputError as exc:  # pydantic reports ValueError as a validation error
        raise ValueError(str(exc)) from None


# The same rule for the OpenAPI document (JSON Schema cannot name lone surrogates).
PRINTABLE_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"

SafeText = Annotated[
    str,
    AfterValidator(_check_model_text),
    Field(json_schema_extra={"pattern": PRINTABLE_PATTERN}),
]
"""A pydantic `str` that refuses control characters, NUL and lone surrogates."""


def json_depth(raw: str | bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON document (strings skipped).

    A linear scan without recursion, so it is safe before `json.loads`, whose recursive
    decoder raises RecursionError on a few thousand opening brackets.
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads_bounded(raw: str, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` for untrusted text: nesting at most `max_depth`, strings checked.

    Raises InvalidInputError naming `what` for invalid JSON, deep nesting, NaN/Infinity
    and strings with control characters or lone surrogates (keys and values).
    """
    check_text(raw, what)
    if json_depth(raw) > max_depth:
        raise InvalidInputError(f"expected {what} nested at most {max_depth} levels deep")
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:
        raise InvalidInputError(f"expected {what} as valid JSON") from None
    _check_strings(value, what)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_strings(value: Any, what: str) -> None:
    """Check every string in a decoded JSON value (escapes such as \\u0000 decode here)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            check_text(item, what)
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
