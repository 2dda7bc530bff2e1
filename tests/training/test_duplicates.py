"""Near-duplicate grouping: copies of one photo land in one group, distinct photos do not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from sightscan.detections import Label
from sightscan.training.dataset import TrainingImage, assemble_training_set
from sightscan.training.duplicates import group_near_duplicates


def scene(seed: int, size: tuple[int, int] = (200, 150)) -> Image.Image:
    """A photo-like picture: a gradient sky and many coloured shapes with sharp corners."""
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(0, 1, h)[:, None, None] * rng.integers(40, 200, 3)
    image = Image.fromarray(np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        dx, dy = int(rng.integers(5, 50)), int(rng.integers(5, 50))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle((x, y, x + dx, y + dy), fill=colour)
        else:
            draw.polygon([(x, y), (x + dx, y + dy // 3), (x + dx // 2, y + dy)], fill=colour)
    return image


def reencoded(image: Image.Image, quality: int = 40) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def recoloured(image: Image.Image) -> Image.Image:
    warmer = Image.merge("RGB", [c.point(lambda v, k=k: min(255, int(v * k)))
                                 for c, k in zip(image.split(), (1.15, 1.0, 0.8), strict=True)])
    return ImageEnhance.Contrast(ImageEnhance.Brightness(warmer).enhance(1.2)).enhance(0.8)


def rotated(image: Image.Image) -> Image.Image:
    turned = image.rotate(12, resample=Image.Resampling.BILINEAR)  # black corners, as Roboflow
    w, h = turned.size
    return turned.crop((w // 12, h // 12, w - w // 12, h - h // 12)).resize((w, h))


COPIES = {
    "re-encoded": reencoded,
    "resized": lambda im: im.resize((96, 72), Image.Resampling.LANCZOS),
    "mirrored": ImageOps.mirror,
    "recoloured": recoloured,
    "rotated and cropped": rotated,
}


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


@pytest.mark.parametrize("kind", sorted(COPIES))
def test_a_copy_lands_in_the_group_of_its_original(kind: str) -> None:
    photos = [scene(seed) for seed in range(6)]
    copy = COPIES[kind](photos[2])
    groups = group_near_duplicates([pixels(p) for p in [*photos, copy]])
    assert groups[-1] == groups[2]


def test_distinct_photos_stay_in_groups_of_their_own() -> None:
    groups = group_near_duplicates([pixels(scene(seed)) for seed in range(12)])
    assert groups == list(range(12))


def test_all_kinds_of_copies_of_one_photo_form_one_group() -> None:
    original = scene(7)
    copies = [make(original) for make in COPIES.values()]
    groups = group_near_duplicates([pixels(p) for p in [scene(1), original, *copies, scene(2)]])
    assert groups == [0, 1, 1, 1, 1, 1, 1, 2]


def _training_image(key: str, image: Image.Image, name: str) -> TrainingImage:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    return TrainingImage(key, lambda: data, [Label(name)])


@pytest.mark.slow
def test_copies_never_straddle_the_train_validation_split() -> None:
    images = []
    for seed in range(8):
        original = scene(100 + seed)
        name = "Tower" if seed % 2 else "Gate"
        for kind, make in COPIES.items():
            images.append(_training_image(f"{seed}-{kind}", make(original), name))
    result = assemble_training_set(images, city=None, min_images_per_label=2,
                                   val_fraction=0.25, decode_size=96)
    val_originals = {s.key.split("-")[0] for s in result.val}
    train_originals = {s.key.split("-")[0] for s in result.train}
    assert val_originals and train_originals and not val_originals & train_originals
    assert result.duplicate_groups == 8
    assert result.counts()["duplicate_groups"] == 8
