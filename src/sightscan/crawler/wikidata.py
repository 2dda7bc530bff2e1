"""Sight discovery with Wikidata through the Wikidata Query Service (SPARQL endpoint).

One query per city: the city item is matched by its exact English label among human
settlements (Q486972 and subclasses); tourist attractions and landmarks located in it (P131,
one or two levels down) are ranked by a popularity proxy, their number of sitelinks
(Wikipedia and sister-project articles). Each item's English description (schema:description)
and English Wikipedia article (schema:about ... schema:isPartOf) are asked for too: they tell
the user what the sight is. The answer is W3C SPARQL 1.1 Query Results JSON.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

import httpx

from sightscan.crawler.info import short_description, web_url, wikidata_url
from sightscan.crawler.types import Sight
from sightscan.errors import ExternalServiceError
from sightscan.http import decode_json, request_with_retries, retry_options

DEFAULT_WIKIDATA_URL = "https://query.wikidata.org/sparql"
SERVICE = "Wikidata Query Service"
SETTLEMENT = "Q486972"  # human settlement (city, town, ... are subclasses)
SIGHT_CLASSES = ("Q570116", "Q2319498")  # tourist attraction, landmark
MAX_CITIES = 3  # items sharing the city's label that are searched at most
ACCEPT = "application/sparql-results+json"
WIKIPEDIA = "https://en.wikipedia.org/"  # the sitelink whose article is the sight's link

_ECHAR = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t",
          "\b": "\\b", "\f": "\\f"}
_ENTITY = re.compile(r"^https?://www\.wikidata\.org/entity/(Q[1-9][0-9]*)$")
_POINT = re.compile(
    r"^\s*(?:<http://www\.wikidata\.org/entity/Q2>\s*)?"  # Earth is the default globe
    r"Point\(\s*([-+]?[0-9.eE+-]+)\s+([-+]?[0-9.eE+-]+)\s*\)\s*$",
    re.IGNORECASE,
)


def sparql_string(value: str) -> str:
    """`value` as a double-quoted SPARQL 1.1 string literal (STRING_LITERAL2).

    Backslash, quotes, line breaks, tab, backspace and form feed become ECHAR escapes; other
    control characters become UCHAR escapes. Since SPARQL processors may decode `\\uXXXX`
    before parsing, a `u`/`U` that follows a backslash is itself written as a UCHAR, so no
    escape sequence can be formed from the value's own text.
    """
    out: list[str] = []
    previous = ""
    for char in value:
        if char in _ECHAR:
            out.append(_ECHAR[char])
        elif char in "uU" and previous == "\\":
            out.append(f"\\u{ord(char):04X}")
        elif ord(char) < 0x20 or ord(char) == 0x7F or 0xD800 <= ord(char) <= 0xDFFF:
            # control characters spelled out; lone surrogates (not encodable) replaced
            code = 0xFFFD if ord(char) >= 0xD800 else ord(char)
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
        previous = char
    return '"' + "".join(out) + '"'


def build_query(city: str, limit: int) -> str:
    """The SPARQL query for the sights of `city`, at most `limit` items' rows (plus room for
    items with several coordinates or labels)."""
    classes = " ".join(f"wd:{q}" for q in SIGHT_CLASSES)
    rows = limit * 2 + 20
    return (
        "SELECT DISTINCT ?item ?itemLabel ?sitelinks ?coord ?itemDescription ?article WHERE {\n"
        "  {\n"
        "    SELECT DISTINCT ?city WHERE {\n"
        f"      ?city rdfs:label {sparql_string(city)}@en .\n"
        f"      ?city wdt:P31/wdt:P279* wd:{SETTLEMENT} .\n"
        f"    }} LIMIT {MAX_CITIES}\n"
        "  }\n"
        "  ?item wdt:P131/wdt:P131? ?city .\n"
        f"  VALUES ?kind {{ {classes} }}\n"
        "  ?item wdt:P31/wdt:P279* ?kind .\n"
        "  ?item wikibase:sitelinks ?sitelinks .\n"
        "  OPTIONAL { ?item wdt:P625 ?coord . }\n"
        "  OPTIONAL { ?item schema:description ?itemDescription .\n"
        '             FILTER(LANG(?itemDescription) = "en") }\n'
        f"  OPTIONAL {{ ?article schema:about ?item ; schema:isPartOf <{WIKIPEDIA}> . }}\n"
        '  SERVICE wikibase:label { bd:serviceParam wikibase:language "en" . }\n'
        "}\n"
        "ORDER BY DESC(?sitelinks) ?itemLabel\n"
        f"LIMIT {rows}"
    )


class WikidataDiscovery:
    """Top sights of a city from Wikidata (SPARQL over GET, JSON results)."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        url: str = DEFAULT_WIKIDATA_URL,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self._client = client
        self._url = url
        self._retry = retry_options(retries, backoff, max_backoff)

    def find_sights(self, city: str, limit: int) -> list[Sight]:
        """At most `limit` sights, the most sitelinked first; [] for an unknown city."""
        city = city.strip()
        if not city or limit <= 0:
            return []
        response = request_with_retries(
            self._client,
            "GET",
            self._url,
            params={"query": build_query(city, limit), "format": "json"},
            headers={"Accept": ACCEPT},
            service=SERVICE,
            **self._retry,
        )
        return rank_bindings(_bindings(decode_json(response, SERVICE)))[:limit]


def _bindings(body: Any) -> list[dict[str, Any]]:
    results = body.get("results") if isinstance(body, dict) else None
    bindings = results.get("bindings") if isinstance(results, dict) else None
    if not isinstance(bindings, list):
        raise ExternalServiceError(f"{SERVICE} returned no results.bindings list")
    return [b for b in bindings if isinstance(b, dict)]


def rank_bindings(bindings: list[dict[str, Any]]) -> list[Sight]:
    """Result rows as sights: one per item and per name, most sitelinks first, then by name."""
    items: dict[str, tuple[int, Sight]] = {}
    for row in bindings:
        qid = _qid(_value(row, "item"))
        name = " ".join((_value(row, "itemLabel") or "").split())
        if qid is None or not name or name == qid:
            continue
        score = _sitelinks(_value(row, "sitelinks"))
        lat, lon = parse_point(_value(row, "coord"))
        description = short_description(_value(row, "itemDescription"))
        url = web_url(_value(row, "article"))
        known = items.get(qid)
        if known is None:
            sight = Sight(name, lat, lon, "wikidata", qid, description, url or wikidata_url(qid))
            items[qid] = (score, sight)
            continue
        sight = known[1]  # first row's label wins; first valid coordinates, text and article
        if sight.lat is None and lat is not None:
            sight = replace(sight, lat=lat, lon=lon)
        if sight.description is None and description is not None:
            sight = replace(sight, description=description)
        if url is not None and sight.url == wikidata_url(qid):
            sight = replace(sight, url=url)
        items[qid] = (max(known[0], score), sight)
    ranked = sorted(
        items.values(), key=lambda pair: (-pair[0], pair[1].name, pair[1].source_id or "")
    )
    sights: list[Sight] = []
    seen: set[str] = set()
    for _, sight in ranked:
        if sight.name.casefold() not in seen:
            seen.add(sight.name.casefold())
            sights.append(sight)
    return sights


def parse_point(value: str | None) -> tuple[float | None, float | None]:
    """(lat, lon) from a WKT literal "Point(lon lat)" on Earth; (None, None) otherwise."""
    match = _POINT.match(value or "")
    if match is None:
        return None, None
    try:
        lon, lat = float(match.group(1)), float(match.group(2))
    except ValueError:
        return None, None
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return None, None
    return lat, lon


def _value(row: dict[str, Any], name: str) -> str | None:
    cell = row.get(name)
    value = cell.get("value") if isinstance(cell, dict) else None
    return value if isinstance(value, str) else None


def _qid(uri: str | None) -> str | None:
    match = _ENTITY.match(uri or "")
    return match.group(1) if match else None


def _sitelinks(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0
