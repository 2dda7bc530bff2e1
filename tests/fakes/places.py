"""Fake Google Places API (New) Text Search: POST /v1/places:searchText."""

from __future__ import annotations

import zlib
from typing import Any

from fakes.server import Handler, Recorded, Reply

SEARCH_PATH = "/v1/places:searchText"


def google_error(code: int, status: str, message: str) -> Reply:
    """Google's JSON error shape."""
    return Reply(code, {"error": {"code": code, "message": message, "status": status}})


def place(pid: str, name: str, lat: float, lon: float, ratings: int,
          summary: str | None = None) -> dict[str, Any]:
    """A place as the documented response shape has it (an editorial summary when given)."""
    found: dict[str, Any] = {
        "id": pid, "displayName": {"text": name, "languageCode": "en"},
        "location": {"latitude": lat, "longitude": lon}, "userRatingCount": ratings,
        "rating": 4.5, "googleMapsUri": f"https://maps.google.com/?cid={zlib.crc32(pid.encode())}"}
    if summary is not None:
        found["editorialSummary"] = {"text": summary, "languageCode": "en"}
    return found


def masked(found: dict[str, Any], mask: str) -> dict[str, Any]:
    """Only the fields the X-Goog-FieldMask names, as the API answers ("*" is every field)."""
    fields = {f.strip() for f in mask.split(",")}
    if "*" in fields:
        return found
    return {k: v for k, v in found.items() if f"places.{k}" in fields}


def places_handler(places: list[dict[str, Any]], api_key: str = "test-key",
                   page_size_limit: int = 20) -> Handler:
    """Checks key and field mask like the real API, pages with nextPageToken."""

    def handle(request: Recorded) -> Reply:
        if request.headers.get("x-goog-api-key") != api_key:
            return google_error(403, "PERMISSION_DENIED",
                                "API key not valid. Please pass a valid API key.")
        mask = request.headers.get("x-goog-fieldmask")
        if not mask:
            return google_error(400, "INVALID_ARGUMENT", "FieldMask is a required parameter.")
        body = request.json()
        if not isinstance(body.get("textQuery"), str):
            return google_error(400, "INVALID_ARGUMENT", "textQuery is required")
        size = min(int(body.get("pageSize", 20)), page_size_limit)
        start = int(body.get("pageToken") or 0)
        page = [masked(found, mask) for found in places[start:start + size]]
        reply: dict[str, Any] = {"places": page} if page else {}
        if start + size < len(places):
            reply["nextPageToken"] = str(start + size)
        return Reply(200, reply)

    return handle
