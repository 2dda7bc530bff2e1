"""Sight discovery with OpenStreetMap through the Overpass API.

The city is matched as an administrative area by name (case-insensitive); attractions,
museums, viewpoints, monuments, memorials and castles inside it are ranked by a popularity
proxy: a Wikidata/Wikipedia link first, then the number of `name:*` translations.
A sight's link is its `wikipedia` article, else its `wikidata` item, else its `website`; its
description the `description` tag when mapped.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from sightscan.crawler.info import short_description, web_url, wikidata_url, wikipedia_url
from sightscan.crawler.types import Sight
from sightscan.errors import ExternalServiceError
from sightscan.http import request_json, retry_options

DEFAULT_OVERPASS_URL = "https://overpass-api.de/api/interpreter"
TOURISM = ("attraction", "museum", "viewpoint")
HISTORIC = ("monument", "memorial", "castle")
_REGEX_SPECIALS = re.compile(r"([\\.^$|?*+()\[\]{}])")


def ql_string(value: str) -> str:
    """`value` as a double-quoted Overpass QL string literal (quotes, backslashes escaped)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def ql_exact_regex(value: str) -> str:
    """A QL string holding an anchored regex that matches `value` literally."""
    return ql_string("^" + _REGEX_SPECIALS.sub(r"\\\1", value) + "$")


def build_query(city: str, *, linked_only: bool, timeout: int = 25) -> str:
    """The Overpass QL query for the sights of `city` (only Wikidata/Wikipedia-linked ones
    when `linked_only`)."""
    name_re = ql_exact_regex(city)
    area = (
        f'(area["name"~{name_re},i]["boundary"="administrative"];'
        f'area["name:en"~{name_re},i]["boundary"="administrative"];)->.city;'
    )
    filters = [f'["tourism"~"^({"|".join(TOURISM)})$"]', f'["historic"~"^({"|".join(HISTORIC)})$"]']
    links = ['["wikidata"]', '["wikipedia"]'] if linked_only else [""]
    selects = "".join(f'nwr{f}["name"]{link}(area.city);' for f in filters for link in links)
    return f"[out:json][timeout:{timeout}];{area}({selects});out tags center;"


def popularity(tags: dict[str, str]) -> int:
    """Rank proxy: 1000 for a Wikidata or Wikipedia link, plus one per `name:*` translation."""
    linked = 1000 if ("wikidata" in tags or "wikipedia" in tags) else 0
    return linked + sum(1 for key in tags if key.startswith("name:"))


class OverpassDiscovery:
    """Top sights of a city from OpenStreetMap (Overpass interpreter, POST data=)."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        url: str = DEFAULT_OVERPASS_URL,
        query_timeout: int = 25,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self._client = client
        self._url = url
        self._query_timeout = query_timeout
        self._retry = retry_options(retries, backoff, max_backoff)

    def find_sights(self, city: str, limit: int) -> list[Sight]:
        """Linked sights first; unlinked ones only fill up when too few are linked."""
        sights = rank_elements(self._query(city, linked_only=True))
        if len(sights) < limit:
            known = {s.name.casefold() for s in sights}
            extra = rank_elements(self._query(city, linked_only=False))
            sights += [s for s in extra if s.name.casefold() not in known]
        return sights[:limit]

    def _query(self, city: str, *, linked_only: bool) -> list[dict[str, Any]]:
        query = build_query(city, linked_only=linked_only, timeout=self._query_timeout)
        body = request_json(
            self._client, "POST", self._url, data={"data": query}, service="Overpass", **self._retry
        )
        if not isinstance(body, dict) or not isinstance(body.get("elements"), list):
            remark = body.get("remark") if isinstance(body, dict) else None
            reason = f": {' '.join(str(remark).split())[:160]}" if remark else ""
            raise ExternalServiceError(f"Overpass returned no elements list{reason}")
        if isinstance(body.get("remark"), str) and "runtime error" in body["remark"]:
            raise ExternalServiceError(f"Overpass failed: {' '.join(body['remark'].split())[:160]}")
        return [e for e in body["elements"] if isinstance(e, dict)]


def rank_elements(elements: list[dict[str, Any]]) -> list[Sight]:
    """OSM elements as sights, most popular first, one sight per name."""
    best: dict[str, tuple[int, Sight]] = {}
    for element in elements:
        tags = element.get("tags")
        if not isinstance(tags, dict) or not isinstance(tags.get("name"), str):
            continue
        name = " ".join(tags["name"].split())
        if not name:
            continue
        center = element.get("center")
        point: dict[str, Any] = center if isinstance(center, dict) else element
        sight = Sight(
            name,
            _coord(point.get("lat")),
            _coord(point.get("lon")),
            "osm",
            f"{element.get('type', 'node')}/{element.get('id')}",
            short_description(tags.get("description")),
            link(tags),
        )
        score = popularity(tags)
        key = name.casefold()
        if key not in best or score > best[key][0]:
            best[key] = (score, sight)
    ranked = sorted(best.values(), key=lambda pair: (-pair[0], pair[1].name))
    return [sight for _, sight in ranked]


def link(tags: dict[str, Any]) -> str | None:
    """The page about a sight: its Wikipedia article, Wikidata item or own website."""
    return (
        wikipedia_url(tags.get("wikipedia"))
        or wikidata_url(tags.get("wikidata"))
        or web_url(tags.get("website") or tags.get("contact:website"))
    )


def _coord(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
