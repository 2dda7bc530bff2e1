"""City names are normalised here and nowhere else.

The seed's rule: upper case; letters (umlauts and other scripts included), digits, space,
'-' and '_' are kept, everything else is dropped; runs of spaces collapse. Before that,
NFKC folds compatibility forms (fullwidth `ＢＥＲＬＩＮ` is BERLIN) and, in a name that
mixes Latin with Cyrillic or Greek, each look-alike letter becomes its Latin twin (the
Cyrillic І of `BERLІN`), so one city cannot be requested under two spellings that look
the same. The result is only ever a bound SQL parameter, never SQL text or a table name.
"""

from __future__ import annotations

import re
import string
import unicodedata
from functools import lru_cache

from sightscan.errors import InvalidInputError

MAX_CITY_LENGTH = 100
# \w is exactly str.isalnum() plus '_' (re docs): drop all but letters, digits, ' ', '-', '_'.
_DROPPED = re.compile(r"[^\w \-]+")
_ALNUM = re.compile(r"[^\W_]")
_LOOKALIKE_SCRIPTS = ("CYRILLIC", "GREEK")


def normalise_city(name: str) -> str:
    """Return the canonical city name, or raise InvalidInputError when nothing usable is left."""
    if not isinstance(name, str):
        raise InvalidInputError(f"expected a city name as text, got {type(name).__name__}")
    if len(name) > 3 * MAX_CITY_LENGTH:
        raise InvalidInputError(
            f"expected a city name of at most {MAX_CITY_LENGTH} characters, got {len(name)}"
        )
    composed = unicodedata.normalize("NFKC", name).upper()
    kept = _DROPPED.sub("", composed)
    cleaned = _latin_lookalikes(" ".join(kept.split()))
    if not _ALNUM.search(cleaned):  # '--' or '_' alone is no city
        raise InvalidInputError(f"expected a city name with letters or digits, got {name[:40]!r}")
    if len(cleaned) > MAX_CITY_LENGTH:
        raise InvalidInputError(
            f"expected a city name of at most {MAX_CITY_LENGTH} characters, got {len(cleaned)}"
        )
    return cleaned


def _latin_lookalikes(name: str) -> str:
    """Map Cyrillic/Greek look-alikes to Latin in a name that also has Latin letters.

    A name written wholly in one script (МОСКВА) is left alone; a mixed one whose foreign
    letters have no Latin twin is refused, as no reader could tell it from its look-alike.
    """
    if name.isascii() or not any(ch in string.ascii_uppercase for ch in name):
        return name
    if not any(_script(ch) in _LOOKALIKE_SCRIPTS for ch in name):
        return name
    twins = _latin_twins()
    mapped = "".join(twins.get(ch, ch) for ch in name)
    if any(_script(ch) in _LOOKALIKE_SCRIPTS for ch in mapped):
        raise InvalidInputError(
            f"expected a city name in one script, got Latin mixed with Cyrillic or Greek "
            f"letters: {name[:40]!r}"
        )
    return mapped


def _script(ch: str) -> str:
    return unicodedata.name(ch, "").split(" ", 1)[0]


@lru_cache(maxsize=1)
def _latin_twins() -> dict[str, str]:
    """Upper-case Cyrillic and Greek letters -> the A-Z letter they are confusable with.

    Built from Unicode's confusables (the confusable_homoglyphs data): a letter maps to
    A-Z directly (Cyrillic А -> A) or through the skeleton A-Z shares (І -> l <- I).
    """
    from confusable_homoglyphs import confusables

    def homoglyphs(ch: str) -> list[str]:
        found = confusables.is_confusable(ch, greedy=True, preferred_aliases=[])
        return [h["c"] for entry in found or [] for h in entry["homoglyphs"]]

    via_skeleton = {
        glyph: letter
        for letter in reversed(string.ascii_uppercase)
        for glyph in homoglyphs(letter)
        if len(glyph) == 1 and glyph.isascii()
    }
    twins: dict[str, str] = {}
    for code in list(range(0x0370, 0x0400)) + list(range(0x0400, 0x0530)):
        ch = chr(code)
        if not ch.isupper() or _script(ch) not in _LOOKALIKE_SCRIPTS:
            continue
        for glyph in homoglyphs(ch):
            twin = glyph if glyph in string.ascii_uppercase else via_skeleton.get(glyph)
            if twin is not None:
                twins[ch] = twin
                break
    return twins
