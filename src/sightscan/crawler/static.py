"""Sight discovery from a fixed list: given in a request, or read from a text/JSON file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sightscan.cities import normalise_city
from sightscan.crawler.types import Sight
from sightscan.errors import InvalidInputError


class StaticDiscovery:
    """The same sights for every city, or per city from a {city: [sights]} mapping."""

    def __init__(self, sights: Sequence[str | Sight] | Mapping[str, Sequence[str | Sight]]):
        if isinstance(sights, Mapping):
            self._by_city = {normalise_city(c): _to_sights(s) for c, s in sights.items()}
            self._all: list[Sight] | None = None
        else:
            self._by_city = {}
            self._all = _to_sights(sights)

    @classmethod
    def from_file(cls, path: Path) -> StaticDiscovery:
        """Text (one sight a line, `#` comments) or JSON (list, or mapping city -> list)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(
                f"expected a readable sights file, got {path} ({exc.strerror})"
            ) from None
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise InvalidInputError(f"expected JSON in {path}: {exc}") from None
            if not isinstance(data, list | dict):
                raise InvalidInputError(f"expected a JSON list or object in {path}")
            return cls(data)
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        return cls([line for line in lines if line])

    def find_sights(self, city: str, limit: int) -> list[Sight]:
        """The listed sights (for this city, when listed per city), in the given order."""
        sights = self._all if self._all is not None else self._by_city.get(normalise_city(city), [])
        return sights[:limit]


def _to_sights(items: Iterable[Any]) -> list[Sight]:
    if isinstance(items, str) or not isinstance(items, Iterable):
        raise InvalidInputError(f"expected a list of sights, got {type(items).__name__}")
    sights: list[Sight] = []
    seen: set[str] = set()
    for item in items:
        sight = _to_sight(item)
        if sight.name.casefold() not in seen:
            seen.add(sight.name.casefold())
            sights.append(sight)
    return sights


def _to_sight(item: Any) -> Sight:
    if isinstance(item, Sight):
        return item
    if isinstance(item, dict):
        name, lat, lon = item.get("name"), item.get("lat"), item.get("lon")
    else:
        name, lat, lon = item, None, None
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidInputError(f"expected a sight name of 1-200 characters, got {name!r:.60}")
    for value in (lat, lon):
        if value is not None and not isinstance(value, int | float):
            raise InvalidInputError(f"expected numbers for lat/lon, got {value!r:.30}")
    return Sight(" ".join(name.split()), lat, lon, "static", None)
