"""Generated whole-photo scenes with photo-level labels (no boxes), and everyday photos."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import cast

import numpy as np
from PIL import Image, ImageDraw

from sightscan.detections import Label
from sightscan.training.dataset import TrainingImage

SCENES = ("sunset", "sea", "forest")


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def scene(name: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A sunset sky over a dark horizon, waves on a blue sea, or a forest of green blotches."""
    t = np.linspace(0, 1, size)[:, None, None]
    if name == "sunset":
        top, bottom = np.array([250, 140, 40]), np.array([120, 40, 110])
        pixels = np.broadcast_to(top * (1 - t) + bottom * t, (size, size, 3)).copy()
        horizon = int(size * rng.uniform(0.6, 0.8))
        pixels[horizon:] = rng.integers(10, 40)
    elif name == "sea":
        pixels = np.broadcast_to(np.array([20, 70, 160]) * (0.7 + 0.3 * t), (size, size, 3)).copy()
    else:
        pixels = np.full((size, size, 3), (30, 80, 30), dtype=np.float64)
    image = Image.fromarray(np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255)
                            .astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(25 if name != "sunset" else 0):
        x, y = (int(v) for v in rng.integers(-4, size, 2))
        if name == "sea":
            draw.line((x, y, x + int(rng.integers(6, 16)), y), fill=(230, 240, 250), width=1)
        else:
            g = int(rng.integers(90, 200))
            draw.ellipse((x, y, x + int(rng.integers(5, 12)), y + int(rng.integers(5, 12))),
                         fill=(20, g, 30))
    return image


def everyday(rng: np.random.Generator, kind: int, size: int = 64) -> Image.Image:
    """Photos of none of the scenes: a chequered cloth, a page of text, a brick wall."""
    image = Image.new("RGB", (size, size), (235, 232, 225))
    draw = ImageDraw.Draw(image)
    if kind % 3 == 0:
        cell = int(rng.integers(5, 11))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        for y in range(0, size, cell):
            for x in range(0, size, cell):
                if (x // cell + y // cell) % 2:
                    draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour)
    elif kind % 3 == 1:
        for y in range(3, size, 5):
            draw.line((3, y, int(rng.integers(20, size - 3)), y), fill=(25, 25, 25), width=2)
    else:
        draw.rectangle((0, 0, size, size), fill=(110, 110, 105))
        height = int(rng.integers(5, 9))
        for row, y in enumerate(range(0, size, height)):
            for x in range(-(row % 2) * height, size, 2 * height):
                red = int(rng.integers(140, 200))
                draw.rectangle((x + 1, y + 1, x + 2 * height - 2, y + height - 2),
                               fill=(red, 60, 40))
    return image


def make_scenes(per_class: int, seed: int, size: int = 64) -> list[TrainingImage]:
    """Photo-level labelled scenes (no box, no negative: a city alone with photo folders)."""
    rng = np.random.default_rng(seed)
    images = []
    for name in SCENES:
        for k in range(per_class):
            data = _png(scene(name, rng, size))
            load = cast("Callable[[], bytes]", lambda d=data: d)
            images.append(TrainingImage(f"{name}-{k}", load, [Label(name)]))
    return images


def make_everyday(count: int, seed: int, size: int = 64) -> list[bytes]:
    """Everyday photos (PNG bytes) of none of the scenes."""
    rng = np.random.default_rng(seed)
    return [_png(everyday(rng, k, size)) for k in range(count)]
