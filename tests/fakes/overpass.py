"""Fake Overpass API interpreter: POST /api/interpreter with a `data=` form field."""

from __future__ import annotations

from typing import Any

from fakes.server import Handler, Recorded, Reply

INTERPRETER_PATH = "/api/interpreter"


def element(kind: str, oid: int, name: str, **tags: str) -> dict[str, Any]:
    """An element of `out tags center;`: nodes carry lat/lon, ways/relations a center."""
    point = {"lat": 52.5, "lon": 13.4}
    base: dict[str, Any] = {"type": kind, "id": oid, "tags": {"name": name, **tags}}
    if kind == "node":
        base.update(point)
    else:
        base["center"] = point
    return base


def overpass_handler(linked: list[dict[str, Any]],
                     unlinked: list[dict[str, Any]] | None = None) -> Handler:
    """Answers linked-only queries with `linked`, others with linked + unlinked."""

    def handle(request: Recorded) -> Reply:
        query = request.form().get("data", [""])[0]
        if not query.startswith("[out:json]"):
            return Reply(400, "<html><body>Error: line 1: parse error</body></html>")
        elements = linked if '["wikidata"]' in query else linked + (unlinked or [])
        return Reply(200, {"version": 0.6, "generator": "Overpass API (fake)",
                           "osm3s": {"timestamp_osm_base": "2024-01-01T00:00:00Z"},
                           "elements": elements})

    return handle
