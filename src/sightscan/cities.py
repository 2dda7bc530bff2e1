"""City names are normalised here and nowhere else.

The seed's rule: upper case; letters (umlauts and other scripts included), digits, space,
'-' and '_' are kept, everything else is dropped; runs of spaces collapse. The result is
only ever a bound SQL parameter, never SQL text or a table name.
"""

from __future__ import annotations

import unicodedata

from sightscan.errors import InvalidInputError

MAX_CITY_LENGTH = 100


def normalise_city(name: str) -> str:
    """Return the canonical city name, or raise InvalidInputError when nothing usable is left."""
    if not isinstance(name, str):
        raise InvalidInputError(f"expected a city name as text, got {type(name).__name__}")
    if len(name) > 3 * MAX_CITY_LENGTH:
        raise InvalidInputError(
            f"expected a city name of at most {MAX_CITY_LENGTH} characters, got {len(name)}"
        )
    composed = unicodedata.normalize("NFC", name).upper()
    kept = "".join(ch for ch in composed if ch.isalnum() or ch in " -_")
    cleaned = " ".join(kept.split())
    if not any(ch.isalnum() for ch in cleaned):  # '--' or '_' alone is no city
        raise InvalidInputError(f"expected a city name with letters or digits, got {name[:40]!r}")
    if len(cleaned) > MAX_CITY_LENGTH:
        raise InvalidInputError(
            f"expected a city name of at most {MAX_CITY_LENGTH} characters, got {len(cleaned)}"
        )
    return cleaned
