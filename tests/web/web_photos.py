"""Generated photos for the web client tests: a red disc or a blue square, or nothing."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import cast

import numpy as np
from PIL import Image, ImageDraw

from sightscan.detections import Box, Label
from sightscan.training.dataset import TrainingImage

SHAPES = ("blue square", "red disc")
_COLOURS = {"red disc": (215, 35, 35), "blue square": (35, 60, 215)}


def render(shape: str | None, rng: np.random.Generator, size: tuple[int, int] = (64, 64)
           ) -> tuple[bytes, Box | None]:
    """A PNG photo of `size` (w, h) with one shape (or none) and its relative box."""
    width, height = size
    base = rng.integers(120, 200, 3)
    pixels = base + rng.normal(0, 8, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    box = None
    if shape is not None:
        side = int(rng.uniform(0.4, 0.7) * min(width, height))
        x0 = int(rng.integers(0, width - side + 1))
        y0 = int(rng.integers(0, height - side + 1))
        draw = ImageDraw.Draw(image)
        corners = (x0, y0, x0 + side - 1, y0 + side - 1)
        if shape == "red disc":
            draw.ellipse(corners, fill=_COLOURS[shape])
        else:
            draw.rectangle(corners, fill=_COLOURS[shape])
        box = Box(x0 / width, y0 / height, (x0 + side) / width, (y0 + side) / height)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue(), box


def training_images(per_class: int, negatives: int, seed: int, size: int) -> list[TrainingImage]:
    """Boxed photos of each shape plus photos without one."""
    rng = np.random.default_rng(seed)
    images = []
    for shape in SHAPES:
        for k in range(per_class):
            data, box = render(shape, rng, (size, size))
            load = cast("Callable[[], bytes]", lambda d=data: d)
            images.append(TrainingImage(f"{shape}-{k}", load, [Label(shape, box)]))
    for k in range(negatives):
        data, _ = render(None, rng, (size, size))
        load = cast("Callable[[], bytes]", lambda d=data: d)
        images.append(TrainingImage(f"none-{k}", load, []))
    return images
