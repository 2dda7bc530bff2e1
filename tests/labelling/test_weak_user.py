"""Weak labels from the crawl and the labeller factory (user labels: tests/api, the upload)."""

from __future__ import annotations

import pytest

from fakes.images import jpeg_bytes
from sightscan.detections import Box, Detection, Label
from sightscan.errors import ConfigurationError
from sightscan.labelling.base import LabellingItem
from sightscan.labelling.factory import make_labeller
from sightscan.labelling.vision import VisionLabeller
from sightscan.labelling.weak import WeakLabeller

IMAGE = jpeg_bytes()
ITEM = LabellingItem(IMAGE, 32, 24, "Brandenburg Gate", "BERLIN")
BOX = Box(0.1, 0.2, 0.5, 0.9)


def detector(*detections: Detection):  # type: ignore[no-untyped-def]
    seen: list[bytes] = []

    def detect(data: bytes) -> list[Detection]:
        seen.append(data)
        return list(detections)

    detect.seen = seen  # type: ignore[attr-defined]
    return detect


def test_without_a_model_the_weak_label_is_the_sight_without_a_box() -> None:
    assert WeakLabeller().label(ITEM) == [Label("Brandenburg Gate")]


def test_a_photo_without_a_sight_hint_gets_no_weak_label() -> None:
    item = LabellingItem(IMAGE, 32, 24, None, "BERLIN")
    assert WeakLabeller().label(item) == []


def test_the_model_boxes_the_sight_when_it_finds_it() -> None:
    detect = detector(Detection("Reichstag", 0.9, Box(0, 0, 1, 1)),
                      Detection("brandenburg_gate", 0.6, BOX),
                      Detection("Brandenburg Gate", 0.4, Box(0, 0, 0.2, 0.2)))
    assert WeakLabeller(detect).label(ITEM) == [Label("Brandenburg Gate", BOX)]
    assert detect.seen == [IMAGE]  # type: ignore[attr-defined]


def test_no_box_when_the_model_finds_only_other_sights_or_weak_ones() -> None:
    detect = detector(Detection("Reichstag", 0.9, BOX), Detection("Brandenburg Gate", 0.1, BOX))
    assert WeakLabeller(detect).label(ITEM) == [Label("Brandenburg Gate")]


def test_the_factory_builds_each_labeller() -> None:
    assert isinstance(make_labeller("weak"), WeakLabeller)
    vision = make_labeller("vision", reserve_call=lambda: False,
                           sightscan_vision_endpoint="http://127.0.0.1:9")
    assert isinstance(vision, VisionLabeller)
    with pytest.raises(ConfigurationError, match="reserve_call"):
        make_labeller("vision")
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_LABELLER"):
        make_labeller("magic")
