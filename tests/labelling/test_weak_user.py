"""Weak labels from the crawl and the labeller factory (user labels: tests/api, the upload)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes.images import jpeg_bytes
from sightscan.config import load_settings
from sightscan.detections import Box, Detection, Label
from sightscan.errors import ConfigurationError
from sightscan.labelling.base import LabellingItem
from sightscan.labelling.factory import LabellerConfig, make_labeller
from sightscan.labelling.vision import VisionLabeller
from sightscan.labelling.weak import WeakLabeller

IMAGE = jpeg_bytes()
ITEM = LabellingItem(IMAGE, 32, 24, "Brandenburg Gate", "BERLIN")
BOX = Box(0.1, 0.2, 0.5, 0.9)


class RecordingDetector:
    """A fixed-answer detector that records the photos it was given."""

    def __init__(self, *detections: Detection) -> None:
        self.detections = list(detections)
        self.seen: list[bytes] = []

    def __call__(self, data: bytes) -> list[Detection]:
        self.seen.append(data)
        return list(self.detections)


def test_without_a_model_the_weak_label_is_the_sight_without_a_box() -> None:
    assert WeakLabeller().label(ITEM) == [Label("Brandenburg Gate")]


def test_a_photo_without_a_sight_hint_gets_no_weak_label() -> None:
    item = LabellingItem(IMAGE, 32, 24, None, "BERLIN")
    assert WeakLabeller().label(item) == []


def test_the_model_boxes_the_sight_when_it_finds_it() -> None:
    detect = RecordingDetector(Detection("Reichstag", 0.9, Box(0, 0, 1, 1)),
                               Detection("brandenburg_gate", 0.6, BOX),
                               Detection("Brandenburg Gate", 0.4, Box(0, 0, 0.2, 0.2)))
    assert WeakLabeller(detect).label(ITEM) == [Label("Brandenburg Gate", BOX)]
    assert detect.seen == [IMAGE]


def test_no_box_when_the_model_finds_only_other_sights_or_weak_ones() -> None:
    detect = RecordingDetector(Detection("Reichstag", 0.9, BOX),
                               Detection("Brandenburg Gate", 0.1, BOX))
    assert WeakLabeller(detect).label(ITEM) == [Label("Brandenburg Gate")]


def test_the_factory_builds_each_labeller() -> None:
    assert isinstance(make_labeller(LabellerConfig("weak")), WeakLabeller)
    config = LabellerConfig("vision", vision_endpoint="http://127.0.0.1:9")
    assert isinstance(make_labeller(config, reserve_call=lambda: False), VisionLabeller)
    with pytest.raises(ConfigurationError, match="reserve_call"):
        make_labeller(config)


def test_the_labeller_configuration_comes_from_the_settings_once() -> None:
    settings = load_settings(sightscan_labeller="Vision",
                             sightscan_vision_endpoint="http://127.0.0.1:9",
                             google_application_credentials="/secrets/key.json")
    assert LabellerConfig.from_settings(settings) == LabellerConfig(
        "vision", "http://127.0.0.1:9", Path("/secrets/key.json"))


def test_a_misspelt_labeller_fails_at_start_with_the_allowed_values() -> None:
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_LABELLER.*'weak' or 'vision'"):
        load_settings(sightscan_labeller="visoin")
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_LABELLER: expected one of weak"):
        LabellerConfig("magic")  # type: ignore[arg-type]
