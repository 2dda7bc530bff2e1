"""Google Cloud Vision labeller: the real client library against a fake REST server."""

from __future__ import annotations

import base64
import sys

import pytest

from fakes.images import jpeg_bytes
from fakes.server import FakeServer, Reply
from fakes.vision import ANNOTATE_PATH, landmark, vision_handler
from sightscan.detections import Box, Label
from sightscan.errors import (
    ConfigurationError,
    ExternalServiceError,
    InvalidImageError,
    QuotaExceededError,
)
from sightscan.labelling.base import LabellingItem
from sightscan.labelling.vision import VisionLabeller, box_from_vertices

IMAGE = jpeg_bytes(200, 100)
ITEM = LabellingItem(IMAGE, 200, 100, "Brandenburg Gate", "BERLIN")
GATE = landmark("Brandenburg Gate", 0.92, [(20, 10), (120, 10), (120, 90), (20, 90)])


class Budget:
    """A reserve_call that allows `left` calls and counts the asks."""

    def __init__(self, left: int) -> None:
        self.left = left
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def labeller(server: FakeServer, budget: Budget | None = None, **kwargs: float) -> VisionLabeller:
    options = {"backoff": 0.01, "max_backoff": 0.02, "retry_deadline": 2.0, "timeout": 2.0}
    options.update(kwargs)
    return VisionLabeller(budget or Budget(100), endpoint=server.url, **options)  # type: ignore[arg-type]


def test_landmarks_become_labels_with_relative_boxes(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, vision_handler([GATE]))
    assert labeller(fake_server).label(ITEM) == [
        Label("Brandenburg Gate", Box(0.1, 0.1, 0.6, 0.9))]


def test_the_request_has_the_documented_wire_format(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, vision_handler([GATE]))
    labeller(fake_server).label(ITEM)
    request = fake_server.requests_to(ANNOTATE_PATH)[0]
    body = request.json()
    assert base64.b64decode(body["requests"][0]["image"]["content"]) == IMAGE
    feature = body["requests"][0]["features"][0]
    assert feature["type"] in ("LANDMARK_DETECTION", 2)
    assert feature["maxResults"] == 5
    assert "authorization" not in request.headers  # anonymous over plain http


def test_low_scores_are_dropped_and_names_merged(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, vision_handler([
        landmark("Pariser Platz", 0.1, [(0, 0), (10, 0), (10, 10), (0, 10)]),
        landmark("Brandenburg Gate", 0.5, [(0, 0), (50, 0), (50, 50), (0, 50)]),
        GATE,
        landmark("Reichstag", 0.7, [(-30, 0), (400, 0), (400, 200), (-30, 200)]),
    ]))
    labels = labeller(fake_server).label(ITEM)
    assert labels == [Label("Brandenburg Gate", Box(0.1, 0.1, 0.6, 0.9)),
                      Label("Reichstag", Box(0.0, 0.0, 1.0, 1.0))]


def test_no_landmarks_means_no_labels(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, vision_handler([]))
    assert labeller(fake_server).label(ITEM) == []


def test_a_refused_reservation_makes_no_request(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, vision_handler([GATE]))
    budget = Budget(1)
    vision = labeller(fake_server, budget)
    vision.label(ITEM)
    with pytest.raises(QuotaExceededError, match="BERLIN"):
        vision.label(ITEM)
    assert len(fake_server.requests) == 1
    assert budget.asked == 2


def test_a_server_error_is_retried_within_one_reservation(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, [
        Reply(500, {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}),
        Reply(200, {"responses": [{"landmarkAnnotations": [GATE]}]}),
    ])
    budget = Budget(5)
    assert len(labeller(fake_server, budget).label(ITEM)) == 1
    assert len(fake_server.requests) == 2
    assert budget.asked == 1


def test_persistent_rate_limiting_ends_in_an_external_service_error(
        fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, Reply(429, {"error": {
        "code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}},
        {"Retry-After": "1"}))
    with pytest.raises(ExternalServiceError, match="after retries"):
        labeller(fake_server, retry_deadline=0.2).label(ITEM)
    assert len(fake_server.requests) >= 2


def test_a_permission_error_is_not_retried(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, Reply(403, {"error": {
        "code": 403, "message": "Cloud Vision API has not been used in project 1",
        "status": "PERMISSION_DENIED"}}))
    with pytest.raises(ExternalServiceError, match="HTTP 403: Cloud Vision API"):
        labeller(fake_server).label(ITEM)
    assert len(fake_server.requests) == 1


def test_an_image_rejected_by_vision_is_an_invalid_image(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, Reply(200, {"responses": [
        {"error": {"code": 3, "message": "Bad image data."}}]}))
    with pytest.raises(InvalidImageError, match="Bad image data"):
        labeller(fake_server).label(ITEM)


def test_malformed_json_is_an_external_service_error(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, Reply(200, b"{\"responses\": [",
                                                   {"Content-Type": "application/json"}))
    with pytest.raises(ExternalServiceError, match="malformed"):
        labeller(fake_server).label(ITEM)


def test_a_timeout_ends_in_an_external_service_error(fake_server: FakeServer) -> None:
    fake_server.route("POST", ANNOTATE_PATH, Reply(200, {"responses": [{}]}, delay=1.0))
    with pytest.raises(ExternalServiceError):
        labeller(fake_server, timeout=0.1, retry_deadline=0.3).label(ITEM)


def test_boxes_are_clipped_and_degenerate_ones_dropped() -> None:
    assert box_from_vertices([(-5, -5), (300, 150)], 200, 100) == Box(0.0, 0.0, 1.0, 1.0)
    assert box_from_vertices([(10, 10), (10, 50)], 200, 100) is None
    assert box_from_vertices([], 200, 100) is None


def test_a_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.vision", None)
    with pytest.raises(ConfigurationError, match=r"pip install sightscan\[gcp\]"):
        VisionLabeller(Budget(1), endpoint="http://127.0.0.1:9")
