"""Background crops: negatives cut from labelled photos never contain the labelled sight."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("torch", reason="the training extra is not installed")

from sightscan.detections import Box, Label  # noqa: E402
from sightscan.training.dataset import TrainingImage  # noqa: E402
from sightscan.training.negatives import (  # noqa: E402
    background_box,
    background_crops,
    folder_negatives,
)


def _photo_with_red_tower(box: Box, size: tuple[int, int] = (200, 160)) -> bytes:
    image = Image.new("RGB", size, (90, 140, 200))
    w, h = size
    ImageDraw.Draw(image).rectangle((box.x1 * w, box.y1 * h, box.x2 * w - 1, box.y2 * h - 1),
                                    fill=(255, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_the_largest_strip_beside_the_boxes_is_chosen() -> None:
    region = background_box([Box(0.1, 0.2, 0.3, 0.9)])
    assert region is not None and region.x1 == pytest.approx(0.34) and region.x2 == 1.0


def test_no_strip_when_the_sight_fills_the_photo() -> None:
    assert background_box([Box(0.05, 0.05, 0.95, 0.95)]) is None
    assert background_box([]) is None


def test_crops_hold_no_pixel_of_the_sight_and_have_no_labels() -> None:
    tower = Box(0.55, 0.1, 0.7, 1.0)
    data = _photo_with_red_tower(tower)
    photo = TrainingImage("7", lambda: data, [Label("Tower", tower)])
    crops = background_crops([photo], limit=5)
    assert [(c.key, c.labels) for c in crops] == [("7:background", [])]
    pixels = np.asarray(Image.open(io.BytesIO(crops[0].load())).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 80)
    assert pixels.shape[0] == 160 and pixels.shape[1] >= 80 and not red.any()


def test_photos_with_an_unboxed_label_give_no_crop_and_the_limit_holds() -> None:
    data = _photo_with_red_tower(Box(0.1, 0.1, 0.2, 0.3))
    unboxed = TrainingImage("1", lambda: data, [Label("Tower")])
    boxed = [TrainingImage(str(i), lambda: data, [Label("Tower", Box(0.1, 0.1, 0.2, 0.3))])
             for i in range(2, 6)]
    crops = background_crops([unboxed, *boxed], limit=2)
    assert [c.key for c in crops] == ["2:background", "3:background"]


def test_everyday_photos_from_a_folder_are_unlabelled_negatives_spread_over_the_pool(
        tmp_path: Path) -> None:
    data = _photo_with_red_tower(Box(0.1, 0.1, 0.2, 0.3))
    (tmp_path / "street").mkdir()
    for i in range(6):
        (tmp_path / "street" / f"{i}.png").write_bytes(data)
    (tmp_path / "notes.txt").write_text("not a photo")
    picked = folder_negatives(tmp_path, limit=3)
    assert [p.key for p in picked] == ["everyday:street/0.png", "everyday:street/2.png",
                                       "everyday:street/4.png"]
    assert all(p.labels == [] and p.load() == data for p in picked)
    assert folder_negatives(tmp_path / "missing", limit=3) == []
