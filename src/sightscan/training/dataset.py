"""Training-set assembly: clean names, decode photos, drop rare classes, split train/val.

Every photo is decoded once, up front (a corrupt one is skipped and counted, never fatal)
and kept as a small RGB array, so training epochs never touch the blob store again.

Labels without a box ("this photo shows sight X") are kept as image-level labels: the
trainer teaches them with a classification-only, multiple-instance loss (the best cell of
the photo must score X), so they never invent a box. A class that has no box at all in the
training set falls back to a whole-photo box, so the detector still answers for it.

Copies and near-duplicates (re-encoded, resized, mirrored, recoloured, rotated, cropped)
are grouped before the split and a group goes to one side whole (`group_near_duplicates`),
for imported sets and crawled photos alike, so validation photos are never seen in training.

Photos of other landmarks (keys starting with LANDMARK_KEY: the landmark pool) are not
trained on and not split: they are decoded into `TrainingSet.landmarks`, the open-set gate's
negatives (rejection.py).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sightscan.detections import Box, Label
from sightscan.errors import InvalidImageError, TrainingError
from sightscan.images import decode_checked_rgb
from sightscan.training.duplicates import group_near_duplicates
from sightscan.training.names import merge_label_names

__all__ = ["TrainingImage", "Sample", "TrainingSet", "assemble_training_set", "decode_pixels",
           "decode_landmarks", "group_near_duplicates"]

WHOLE_IMAGE = Box(0.0, 0.0, 1.0, 1.0)
NEGATIVE_KEY = "<none>"
LANDMARK_KEY = "landmark/"  # key prefix of other landmarks' photos: the gate's negatives only
# The score threshold's keep-rate rule needs 33 validation photos answered right
# (evaluation.MIN_ANSWERED_FOR_KEEP_RATE); a small city's split is raised to this many
# sight photos (a few are answered wrong, and near-duplicate groups split whole) when
# MAX_VAL_FRACTION of its photos holds them.
MIN_VAL_SIGHT_PHOTOS = 45
MAX_VAL_FRACTION = 0.25


@dataclass(frozen=True, slots=True)
class TrainingImage:
    """A photo for training: key, lazy loader of its bytes, labels (empty = background)."""

    key: str
    load: Callable[[], bytes]
    labels: list[Label] = field(default_factory=list)


@dataclass(slots=True)
class Sample:
    """A decoded photo: RGB pixels (stretched to a square) and class-indexed targets."""

    key: str
    pixels: np.ndarray  # uint8 [H, W, 3]
    boxes: list[tuple[int, Box]]  # (class index, relative box)
    image_classes: list[int]  # image-level labels without a box
    source: TrainingImage  # the photo with canonical label names, for evaluation
    group: int | None = None  # near-duplicate group (assemble_training_set); None: alone

    @property
    def classes(self) -> set[int]:
        """Every class shown in the photo."""
        return {c for c, _ in self.boxes} | set(self.image_classes)

    @property
    def is_negative(self) -> bool:
        """True for a background photo (no known sight)."""
        return not self.boxes and not self.image_classes


@dataclass(slots=True)
class TrainingSet:
    """What the trainer consumes, plus the counts a report and the model metadata show."""

    class_names: list[str]
    train: list[Sample]
    val: list[Sample]
    dropped_classes: dict[str, int]
    corrupt_images: list[str]
    name_mapping: dict[str, str]
    decode_size: int
    duplicate_groups: int = 0  # groups of near-duplicate photos the split kept together
    landmarks: list[Sample] = field(default_factory=list)  # the gate's negatives only

    def val_images(self) -> list[TrainingImage]:
        """The validation photos as TrainingImages with canonical names (for `evaluate`)."""
        return [s.source for s in self.val]

    def counts(self) -> dict[str, object]:
        """Photo and box counts per split and class, for metadata and reports."""
        def per_class(samples: list[Sample]) -> dict[str, int]:
            counter = Counter(c for s in samples for c in s.classes)
            return {name: counter.get(i, 0) for i, name in enumerate(self.class_names)}

        return {
            "train_images": len(self.train),
            "val_images": len(self.val),
            "train_negatives": sum(s.is_negative for s in self.train),
            "val_negatives": sum(s.is_negative for s in self.val),
            "train_per_class": per_class(self.train),
            "val_per_class": per_class(self.val),
            "dropped_classes": dict(self.dropped_classes),
            "corrupt_images": len(self.corrupt_images),
            "duplicate_groups": self.duplicate_groups,
            "landmark_photos": len(self.landmarks),
        }


def decode_pixels(data: bytes, size: int) -> np.ndarray:
    """Check and decode image bytes, stretched to size x size RGB uint8 (bilinear)."""
    from PIL import Image

    image = decode_checked_rgb(data)  # checked and decoded in one pass
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _stratum(sample_classes: set[str]) -> str:
    return min(sample_classes) if sample_classes else NEGATIVE_KEY


def validation_fraction(requested: float, sight_photos: int) -> float:
    """The share of each stratum held out: `requested`, raised for a small city so that about
    MIN_VAL_SIGHT_PHOTOS of its `sight_photos` are held out, if MAX_VAL_FRACTION of them is
    enough; a smaller city cannot reach the keep-rate rule and keeps its training photos."""
    if requested == 0 or sight_photos == 0:
        return requested
    needed = MIN_VAL_SIGHT_PHOTOS / sight_photos
    return max(requested, needed) if needed <= MAX_VAL_FRACTION else requested


def _split(keys_by_stratum: dict[str, list[str]], val_fraction: float, seed: int) -> set[str]:
    """Per stratum (first class name, or negatives): shuffle by seed, take a fraction for val."""
    val: set[str] = set()
    for stratum in sorted(keys_by_stratum):
        keys = sorted(keys_by_stratum[stratum])
        random.Random(f"{seed}:{stratum}").shuffle(keys)
        n_val = round(len(keys) * val_fraction)
        if len(keys) >= 2 and val_fraction > 0:
            n_val = min(max(n_val, 1), len(keys) - 1)
        else:
            n_val = 0
        val.update(keys[:n_val])
    return val


def assemble_training_set(images: Iterable[TrainingImage], *, city: str | None,
                          min_images_per_label: int, val_fraction: float = 0.2,
                          seed: int = 0, decode_size: int = 384,
                          on_decoded: Callable[[int, int], None] | None = None,
                          group_duplicates: bool = True) -> TrainingSet:
    """Clean names, decode photos, drop classes under the minimum and split stratified by class
    (`val_fraction` of each class, more for a small city: `validation_fraction`).

    `on_decoded(done, total)` is called after each photo: decoding is the first long step.
    With `group_duplicates`, near-duplicate photos are split as one (never across train/val).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise TrainingError(f"expected 0 <= val_fraction < 1, got {val_fraction}")
    items = list(images)
    landmark_items = [it for it in items if it.key.startswith(LANDMARK_KEY)]
    items = [it for it in items if not it.key.startswith(LANDMARK_KEY)]
    mapping = merge_label_names((lab.name for it in items for lab in it.labels), city)
    photos_per_class: Counter[str] = Counter()
    for it in items:
        photos_per_class.update({mapping[lab.name] for lab in it.labels if lab.name in mapping})
    if not photos_per_class:
        raise TrainingError(
            "no labelled photos: at least two sights with labelled photos are needed")
    kept = sorted(n for n, c in photos_per_class.items() if c >= min_images_per_label)
    dropped = {n: c for n, c in sorted(photos_per_class.items()) if n not in kept}
    if not kept:
        raise TrainingError(
            f"every sight has fewer than {min_images_per_label} labelled photos "
            f"(MIN_IMAGE_NUMBER_PER_LABEL): {dict(sorted(photos_per_class.items()))}"
        )
    if len(kept) < 2:
        raise TrainingError(
            f"only one sight ({kept[0]!r}) has at least {min_images_per_label} labelled photos; "
            "a detector needs two or more"
        )
    index = {name: i for i, name in enumerate(kept)}
    boxed_classes = {mapping[lab.name] for it in items for lab in it.labels if lab.box is not None}

    samples: dict[str, Sample] = {}
    corrupt: list[str] = []
    for done, it in enumerate(items, start=1):
        if on_decoded is not None:
            on_decoded(done, len(items))
        if it.key in samples:
            continue
        names = {mapping[lab.name] for lab in it.labels}
        if it.labels and not names & set(kept):
            continue  # only dropped sights: neither a positive nor a true background photo
        pixels = _decoded(it, decode_size, corrupt)
        if pixels is None:
            continue
        boxes: list[tuple[int, Box]] = []
        image_level: list[int] = []
        for lab in it.labels:
            name = mapping[lab.name]
            if name not in index:
                continue
            if lab.box is not None:
                boxes.append((index[name], lab.box))
            elif name not in boxed_classes:
                boxes.append((index[name], WHOLE_IMAGE))
            else:
                image_level.append(index[name])
        image_level = sorted(set(image_level) - {c for c, _ in boxes})
        canonical = [Label(mapping[lab.name], lab.box) for lab in it.labels
                     if mapping[lab.name] in index]
        samples[it.key] = Sample(it.key, pixels, boxes, image_level,
                                 TrainingImage(it.key, it.load, canonical))

    if not any(not s.is_negative for s in samples.values()):
        raise TrainingError("no labelled photo could be decoded; nothing to train on")
    keys = sorted(samples)
    group_of = (group_near_duplicates([samples[k].pixels for k in keys]) if group_duplicates
                else list(range(len(keys))))
    first_of: dict[int, str] = {}
    members: dict[str, list[str]] = {}  # first key of a group -> its keys
    for key, group in zip(keys, group_of, strict=True):
        members.setdefault(first_of.setdefault(group, key), []).append(key)
        samples[key].group = group
    strata: dict[str, list[str]] = {}
    for first, group_keys in members.items():
        classes = {kept[c] for k in group_keys for c in samples[k].classes}
        strata.setdefault(_stratum(classes), []).append(first)
    # photos, not groups: a set of augmented triplicates holds out enough at 15% already
    fraction = validation_fraction(val_fraction, sum(not s.is_negative for s in samples.values()))
    val_keys = {k for first in _split(strata, fraction, seed) for k in members[first]}
    ordered = sorted(samples)
    landmarks, undecodable = decode_landmarks(landmark_items, decode_size)
    return TrainingSet(
        class_names=kept,
        train=[samples[k] for k in ordered if k not in val_keys],
        val=[samples[k] for k in ordered if k in val_keys],
        dropped_classes=dropped,
        corrupt_images=corrupt + undecodable,
        name_mapping=mapping,
        decode_size=decode_size,
        duplicate_groups=sum(len(group_keys) > 1 for group_keys in members.values()),
        landmarks=landmarks,
    )


def decode_landmarks(images: Sequence[TrainingImage], decode_size: int
                     ) -> tuple[list[Sample], list[str]]:
    """Other landmarks' photos as unlabelled samples, and the keys that could not be decoded."""
    landmarks: list[Sample] = []
    corrupt: list[str] = []
    for it in images:
        pixels = _decoded(it, decode_size, corrupt)
        if pixels is not None:
            landmarks.append(Sample(it.key, pixels, [], [], TrainingImage(it.key, it.load, [])))
    return landmarks, corrupt


def _decoded(image: TrainingImage, decode_size: int, corrupt: list[str]) -> np.ndarray | None:
    """The photo's pixels, or None with its key added to `corrupt` when it cannot be decoded."""
    try:
        return decode_pixels(image.load(), decode_size)
    except (InvalidImageError, OSError, ValueError):
        corrupt.append(image.key)
        return None
