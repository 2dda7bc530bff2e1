"""Generated training data: distinct drawn objects on varied backgrounds (no files needed)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import cast

import numpy as np
from PIL import Image, ImageDraw

from sightscan.detections import Box, Label
from sightscan.training.dataset import TrainingImage

SHAPES = ("red disc", "blue square", "green triangle")
_COLOURS = {"red disc": (220, 30, 30), "blue square": (30, 60, 220),
            "green triangle": (30, 200, 60)}


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    top, bottom = rng.integers(60, 200, 3), rng.integers(60, 200, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    grad = top * (1 - t) + bottom * t
    pixels = np.broadcast_to(grad, (size, size, 3)) + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def render(shape: str | None, rng: np.random.Generator, size: int = 96
           ) -> tuple[bytes, Box | None]:
    """A PNG photo with one shape (or none) and its relative box."""
    image = _background(rng, size)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 3))):  # grey clutter, never a coloured shape
        x, y = rng.integers(0, size - 10, 2)
        g = int(rng.integers(40, 220))
        draw.line((int(x), int(y), int(x + rng.integers(5, 30)), int(y + rng.integers(5, 30))),
                  fill=(g, g, g), width=2)
    box = None
    if shape is not None:
        side = int(rng.integers(size * 0.3, size * 0.6))  # type: ignore[call-overload]
        x0, y0 = (int(v) for v in rng.integers(0, size - side, 2))
        x1, y1 = x0 + side, y0 + side
        colour = tuple(int(np.clip(c + rng.integers(-25, 25), 0, 255)) for c in _COLOURS[shape])
        if shape == "red disc":
            draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=colour)
        elif shape == "blue square":
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour)
        else:
            draw.polygon([(x0, y1 - 1), (x1 - 1, y1 - 1), ((x0 + x1) // 2, y0)], fill=colour)
        box = Box(x0 / size, y0 / size, x1 / size, y1 / size)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue(), box


def make_images(per_class: int, negatives: int, seed: int, size: int = 96,
                boxes: bool = True) -> list[TrainingImage]:
    """Photos of each shape (with or without boxes) plus background photos."""
    rng = np.random.default_rng(seed)
    images = []
    for shape in SHAPES:
        for k in range(per_class):
            data, box = render(shape, rng, size)
            labels = [Label(shape, box if boxes else None)]
            load = cast("Callable[[], bytes]", lambda d=data: d)
            images.append(TrainingImage(f"{shape}-{k}", load, labels))
    for k in range(negatives):
        data, _ = render(None, rng, size)
        load = cast("Callable[[], bytes]", lambda d=data: d)
        images.append(TrainingImage(f"none-{k}", load, []))
    return images
