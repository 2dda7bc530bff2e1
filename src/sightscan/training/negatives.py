"""Background crops: photos without any sight, cut from the parts of labelled photos that
lie outside every box.

A city's crawl brings photos of its sights only; without negatives the detector never
learns what "no known sight" looks like, and its score threshold is calibrated on photos
that all show one. Other cities' photos are the first choice (see service.py); when there
are too few, the strips beside, above or below the boxes (street, sky, other buildings of
the same city) serve as real-photo negatives.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from sightscan.detections import Box
from sightscan.images import open_rgb
from sightscan.training.dataset import TrainingImage

MARGIN = 0.04  # boxes are widened by this much: box edges are rarely exact
MIN_AREA = 0.2  # of the photo
MAX_ASPECT = 3.0


def background_box(boxes: Sequence[Box], *, width: int = 1, height: int = 1) -> Box | None:
    """The largest strip of the photo beside, above or below every box, or None if too small."""
    if not boxes:
        return None
    left = max(0.0, min(b.x1 for b in boxes) - MARGIN)
    right = min(1.0, max(b.x2 for b in boxes) + MARGIN)
    top = max(0.0, min(b.y1 for b in boxes) - MARGIN)
    bottom = min(1.0, max(b.y2 for b in boxes) + MARGIN)
    strips = [
        (0.0, 0.0, left, 1.0),
        (right, 0.0, 1.0, 1.0),
        (0.0, 0.0, 1.0, top),
        (0.0, bottom, 1.0, 1.0),
    ]
    best: Box | None = None
    for x1, y1, x2, y2 in strips:
        area = (x2 - x1) * (y2 - y1)
        if area < MIN_AREA:
            continue
        aspect = ((x2 - x1) * width) / ((y2 - y1) * height)
        if not 1 / MAX_ASPECT <= aspect <= MAX_ASPECT:
            continue
        if best is None or area > best.area:
            best = Box(x1, y1, x2, y2)
    return best


def _crop(load: Callable[[], bytes], boxes: Sequence[Box]) -> bytes:
    image = open_rgb(load())
    region = background_box(boxes, width=image.width, height=image.height)
    if region is None:  # cannot happen for photos chosen by background_crops
        raise ValueError("expected a background region")
    w, h = image.size
    crop = image.crop(
        (round(region.x1 * w), round(region.y1 * h), round(region.x2 * w), round(region.y2 * h))
    )
    out = io.BytesIO()
    crop.save(out, "JPEG", quality=92)
    return out.getvalue()


def background_crops(images: Sequence[TrainingImage], limit: int) -> list[TrainingImage]:
    """Up to `limit` negatives cut from photos whose every label has a box."""
    crops: list[TrainingImage] = []
    for image in images:
        if len(crops) >= limit:
            break
        if not image.labels or any(label.box is None for label in image.labels):
            continue
        boxes = [label.box for label in image.labels if label.box is not None]
        # Photo sizes are unknown until decoded: choose on a square photo, crop on the real one.
        if background_box(boxes) is None:
            continue
        crops.append(
            TrainingImage(f"{image.key}:background", partial(_crop, image.load, boxes), [])
        )
    return crops


EVERYDAY_KEY = "everyday:"  # training keys of everyday scenes (no sight of any city)
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def folder_negatives(folder: Path, limit: int) -> list[TrainingImage]:
    """Up to `limit` everyday photos (no sight of any city) from an operator's folder.

    Spread evenly over the sorted file names, so a large pool gives a varied, stable pick.
    A missing folder gives none: it is optional (SIGHTSCAN_NEGATIVES_DIR).
    """
    if limit <= 0 or not folder.is_dir():
        return []
    paths = sorted(p for p in folder.rglob("*") if p.is_file()
                   and p.suffix.lower() in PHOTO_SUFFIXES)
    step = max(1, len(paths) // limit)
    return [TrainingImage(f"{EVERYDAY_KEY}{p.relative_to(folder)}", p.read_bytes, [])
            for p in paths[::step][:limit]]
