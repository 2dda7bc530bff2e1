"""Label-name cleaning: one canonical display name per sight, as the seed did.

Labellers and crawlers spell one sight many ways ("eiffel_tower", "Eiffel Tower, Paris",
"Tour Eiffel!"), so names are normalised (case, underscores, punctuation, whitespace) and
near-duplicates merged: the same name with or without the city name, or a rapidfuzz ratio
of at least 90. The most frequent raw spelling of a group becomes its display name.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from rapidfuzz import fuzz

FUZZY_MIN_RATIO = 90.0
_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalise_name(name: str) -> str:
    """Lower case, accents kept, underscores/punctuation to spaces, single spaces, trimmed."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = _PUNCT.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _without_city(key: str, city_key: str) -> str:
    if not city_key:
        return key
    words, city_words = key.split(), city_key.split()
    n = len(city_words)
    if len(words) > n and words[:n] == city_words:
        words = words[n:]
    elif len(words) > n and words[-n:] == city_words:
        words = words[:-n]
    if len(words) > 1 and words[-1] in {"in", "of", "de", "di"}:
        words = words[:-1]
    return " ".join(words)


def _untidiness(raw: str) -> tuple[int, bool]:
    """Prefer, among equally frequent spellings, fewer symbols and not all capitals."""
    return len(_PUNCT.findall(raw)), raw.isupper()


def display_name(raw: str) -> str:
    """A readable form of a raw name: underscores to spaces, single spaces, trimmed."""
    return _SPACES.sub(" ", raw.replace("_", " ")).strip()


def merge_label_names(names: Iterable[str], city: str | None = None) -> dict[str, str]:
    """Map every raw label name to the canonical display name of its sight."""
    counts = Counter(n for n in names if n and n.strip())
    city_key = normalise_name(city) if city else ""
    keys = {raw: _without_city(normalise_name(raw), city_key) for raw in counts}
    # Groups are built from the most frequent spelling down, so the common form leads.
    order = sorted(counts, key=lambda r: (-counts[r], _untidiness(r), r))
    groups: list[tuple[str, list[str]]] = []  # (group key, raw members)
    for raw in order:
        key = keys[raw]
        if not key:
            continue
        for group_key, members in groups:
            if key == group_key or fuzz.ratio(key, group_key) >= FUZZY_MIN_RATIO:
                members.append(raw)
                break
        else:
            groups.append((key, [raw]))
    mapping: dict[str, str] = {}
    for _, members in groups:
        leader = display_name(members[0])
        for raw in members:
            mapping[raw] = leader
    return mapping
