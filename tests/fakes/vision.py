"""Fake Google Cloud Vision REST API: POST /v1/images:annotate."""

from __future__ import annotations

import base64
from typing import Any

from fakes.server import Handler, Recorded, Reply

ANNOTATE_PATH = "/v1/images:annotate"
LANDMARK_DETECTION = {"LANDMARK_DETECTION", 2}  # JSON enums may be names or numbers


def landmark(description: str, score: float, vertices: list[tuple[int, int]],
             mid: str = "/m/0fake") -> dict[str, Any]:
    """A landmark annotation as the REST API returns it (zero coordinates omitted)."""
    verts = [{k: v for k, v in (("x", x), ("y", y)) if v} for x, y in vertices]
    return {"mid": mid, "description": description, "score": score,
            "boundingPoly": {"vertices": verts},
            "locations": [{"latLng": {"latitude": 52.5163, "longitude": 13.3777}}]}


def vision_handler(annotations: list[dict[str, Any]]) -> Handler:
    """Validates the request body shape, answers with `annotations` for every image."""

    def handle(request: Recorded) -> Reply:
        body = request.json()
        responses = []
        for item in body.get("requests", []):
            content = item.get("image", {}).get("content")
            features = item.get("features", [])
            if not content or not features or features[0].get("type") not in LANDMARK_DETECTION:
                return Reply(400, {"error": {"code": 400, "message": "Invalid request",
                                             "status": "INVALID_ARGUMENT"}})
            base64.b64decode(content, validate=True)
            responses.append({"landmarkAnnotations": annotations} if annotations else {})
        return Reply(200, {"responses": responses})

    return handle
