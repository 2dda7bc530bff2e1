"""Generated sight photos: one clearly different drawn shape per sight, on varied backgrounds."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

SIGHTS = ("Red Disc", "Blue Square", "Green Triangle")
_COLOURS = {"Red Disc": (220, 30, 30), "Blue Square": (30, 60, 220),
            "Green Triangle": (30, 200, 60)}


def render(sight: str, rng: random.Random, size: int = 128) -> bytes:
    """A JPEG photo showing `sight`'s shape at a random place and size."""
    top = tuple(rng.randint(70, 190) for _ in range(3))
    image = Image.new("RGB", (size, size), top)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(0, 3)):  # grey clutter, never a coloured shape
        x, y = rng.randint(0, size - 10), rng.randint(0, size - 10)
        grey = rng.randint(40, 220)
        draw.line((x, y, x + rng.randint(5, 30), y + rng.randint(5, 30)), fill=(grey,) * 3,
                  width=2)
    side = rng.randint(int(size * 0.35), int(size * 0.6))
    x0, y0 = rng.randint(0, size - side), rng.randint(0, size - side)
    x1, y1 = x0 + side - 1, y0 + side - 1
    colour = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in _COLOURS[sight])
    if sight == "Red Disc":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif sight == "Blue Square":
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    else:
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=colour)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def write_photo_folder(root: Path, *, per_sight: int = 12, size: int = 128, seed: int = 0,
                       sights: tuple[str, ...] = SIGHTS) -> Path:
    """ROOT/<sight>/<n>.jpg for every sight; returns ROOT."""
    rng = random.Random(seed)
    for sight in sights:
        folder = root / sight
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_sight):
            (folder / f"{n:03d}.jpg").write_bytes(render(sight, rng, size))
    return root
