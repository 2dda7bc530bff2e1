"""Sight discovery with the Google Places API (New) Text Search, ranked by rating count.

The field mask also asks for each place's editorial summary (a sentence on what it is) and
its Google Maps page, which clients show with a result.
"""

from __future__ import annotations

from typing import Any

import httpx

from sightscan.crawler.info import short_description, web_url
from sightscan.crawler.types import Sight
from sightscan.errors import ConfigurationError, ExternalServiceError
from sightscan.http import request_json, retry_options

DEFAULT_PLACES_URL = "https://places.googleapis.com/v1/places:searchText"
FIELD_MASK = (
    "places.id,places.displayName,places.location,places.userRatingCount,"
    "places.rating,places.editorialSummary,places.googleMapsUri,nextPageToken"
)
MAX_PAGE_SIZE = 20  # the API's maximum per page
MAX_PAGES = 3  # the API returns at most 60 results over pages


def search_text_url(url: str) -> str:
    """Accept the full searchText URL (SIGHTSCAN_PLACES_URL) or a bare base URL."""
    url = url.rstrip("/")
    return url if url.endswith(":searchText") else f"{url}/v1/places:searchText"


class PlacesDiscovery:
    """Top sights of a city from Places Text Search ("top sights in CITY")."""

    def __init__(
        self,
        client: httpx.Client,
        api_key: str,
        *,
        url: str = DEFAULT_PLACES_URL,
        included_type: str | None = "tourist_attraction",
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if not api_key:
            raise ConfigurationError("MAPS_KEY: required for the `places` sight discovery")
        self._client = client
        self._api_key = api_key
        self._url = search_text_url(url)
        self._included_type = included_type
        self._retry = retry_options(retries, backoff, max_backoff)

    def find_sights(self, city: str, limit: int) -> list[Sight]:
        """At most `limit` places, the most rated first."""
        places: list[dict[str, Any]] = []
        page_token: str | None = None
        for _ in range(MAX_PAGES):
            body = self._search(city, MAX_PAGE_SIZE, page_token)
            places.extend(p for p in body.get("places") or [] if isinstance(p, dict))
            page_token = body.get("nextPageToken")
            if not page_token or len(places) >= limit:
                break
        return rank_places(places)[:limit]

    def _search(self, city: str, page_size: int, page_token: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"textQuery": f"top sights in {city}", "pageSize": page_size}
        if self._included_type:
            payload["includedType"] = self._included_type
        if page_token:
            payload["pageToken"] = page_token
        headers = {"X-Goog-Api-Key": self._api_key, "X-Goog-FieldMask": FIELD_MASK}
        body = request_json(
            self._client,
            "POST",
            self._url,
            json=payload,
            headers=headers,
            service="Google Places",
            **self._retry,
        )
        if not isinstance(body, dict):
            raise ExternalServiceError("Google Places returned an unexpected JSON shape")
        return body


def rank_places(places: list[dict[str, Any]]) -> list[Sight]:
    """Places as sights, most rated first, duplicates (same name) dropped."""
    ordered = sorted(places, key=lambda p: _as_int(p.get("userRatingCount")), reverse=True)
    sights: list[Sight] = []
    seen: set[str] = set()
    for place in ordered:
        display = place.get("displayName")
        name = display.get("text") if isinstance(display, dict) else None
        if not isinstance(name, str) or not name.strip() or name.casefold() in seen:
            continue
        seen.add(name.casefold())
        location = _as_dict(place.get("location"))
        sights.append(
            Sight(
                name.strip(),
                _as_float(location.get("latitude")),
                _as_float(location.get("longitude")),
                "places",
                str(place["id"]) if place.get("id") else None,
                short_description(_as_dict(place.get("editorialSummary")).get("text")),
                web_url(place.get("googleMapsUri")),
            )
        )
    return sights


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
