"""The shared photo sets as benchmark splits: towers, Intramuros and Berlin, plus no-sight photos.

Each set gives training photos (negatives: background crops cut from its own photos, as a
city alone in its warehouse gets), held-out sight photos, and a pool of its photos that
other sets use as "another city's landmarks". Nothing here is a test: the shared sets live
outside the repository (SIGHTSCAN_DATASETS, default ../shared/datasets).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from sightscan.datasets import read_yolo_dataset
from sightscan.detections import Box, Label
from sightscan.training import TrainingImage
from sightscan.training.negatives import background_crops

# ../shared/datasets beside the repository, as on CI and in development
DATA = Path(os.environ.get("SIGHTSCAN_DATASETS",
                           Path(__file__).resolve().parents[2] / "shared" / "datasets"))
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}
SETS = ("towers", "intramuros", "berlin")
# the boxed sets imported as photo folders: boxes dropped in training, kept for judging
FOLDER_SETS = ("towers-folders", "intramuros-folders")
# all three sets as one city of photo folders: 14 landmarks of three cities, photos of
# 224, 512 and 640 px, photo-level labels (top-1 only: the boxes are dropped in training)
ALL_LANDMARKS = "landmarks14"


@dataclass
class BenchmarkSet:
    """One city-like set: what the trainer sees, what it is judged on, what others borrow."""

    name: str
    train: list[TrainingImage]
    test: list[TrainingImage]
    foreign: list[TrainingImage]  # this set's photos as "no sight" for the other sets
    has_boxes: bool


def _image(path: Path, labels: list[Label]) -> TrainingImage:
    return TrainingImage(str(path), path.read_bytes, labels)


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def _spread(items: list[TrainingImage], count: int) -> list[TrainingImage]:
    step = max(1, len(items) // max(1, count))
    return items[::step][:count]


def _with_crops(positives: list[TrainingImage]) -> list[TrainingImage]:
    """The city's photos plus one background crop per four photos (service.py's rule)."""
    return positives + background_crops(positives, len(positives) // 4)


def towers(seed: int, test_fraction: float = 0.2) -> BenchmarkSet:
    """20% of the boxed tower photos held out per tower; empty label files left out."""
    boxed = [it for it in read_yolo_dataset(DATA / "towers") if it.labels]
    by_tower: dict[str, list[TrainingImage]] = {}
    for it in boxed:
        by_tower.setdefault(min(lab.name for lab in it.labels), []).append(
            _image(it.path, it.labels))
    train: list[TrainingImage] = []
    test: list[TrainingImage] = []
    for tower in sorted(by_tower):
        photos = sorted(by_tower[tower], key=lambda im: im.key)
        random.Random(f"{seed}:{tower}").shuffle(photos)
        n_test = round(len(photos) * test_fraction)
        test += photos[:n_test]
        train += photos[n_test:]
    return BenchmarkSet("towers", _with_crops(train), test, _spread(test, 40), True)


def _yolo_labels(path: Path, names: list[str]) -> list[Label]:
    """YOLO lines, boxes (`c cx cy w h`) and polygons (`c x1 y1 x2 y2 ...`: their extent)."""
    labels = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        values = [float(v) for v in parts[1:]]
        if len(values) == 4:
            box = Box.from_yolo(*values)
        else:
            xs, ys = values[0::2], values[1::2]
            box = Box(max(0.0, min(xs)), max(0.0, min(ys)), min(1.0, max(xs)), min(1.0, max(ys)))
        labels.append(Label(names[int(parts[0])], box))
    return labels


def intramuros(seed: int) -> BenchmarkSet:
    """train/ (augmented triplicates) for training, the distinct valid/ photos held out."""
    root = DATA / "intramuros"
    yaml = (root / "data.yaml").read_text(encoding="utf-8")
    names_line = next(line for line in yaml.splitlines() if line.startswith("names:"))
    names = [n.strip(" '\"") for n in names_line.split(":", 1)[1].strip(" []").split(",")]

    def split(name: str) -> list[TrainingImage]:
        images = []
        for path in _photos(root / name / "images"):
            label_file = root / name / "labels" / (path.stem + ".txt")
            labels = _yolo_labels(label_file, names) if label_file.is_file() else []
            if labels:
                images.append(_image(path, labels))
        return images

    test = split("valid")
    return BenchmarkSet("intramuros", _with_crops(split("train")), test, test, True)


def _dhash(path: Path) -> int:
    """64-bit difference hash of a 9x8 grey thumbnail; mirrored copies hash alike (min)."""
    grey = np.asarray(Image.open(path).convert("L").resize((9, 8), Image.Resampling.BILINEAR),
                      dtype=np.int16)
    bits = [(grey[:, 1:] > grey[:, :-1]).flatten(), (grey[:, :-1] > grey[:, 1:])[:, ::-1].flatten()]
    return min(int("".join("1" if b else "0" for b in bits_) or "0", 2) for bits_ in bits)


def near_duplicate_groups(paths: list[Path], max_distance: int = 10) -> list[int]:
    """Group id per photo: photos whose hashes differ in <= max_distance bits join (union-find)."""
    hashes = [_dhash(p) for p in paths]
    parent = list(range(len(paths)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(paths)):
        for j in range(i + 1, len(paths)):
            if bin(hashes[i] ^ hashes[j]).count("1") <= max_distance:
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(paths))]


def berlin(seed: int, test_fraction: float = 0.2, max_train_per_sight: int = 80) -> BenchmarkSet:
    """Photo-level labels (folder = sight); split by near-duplicate groups, 20% held out."""
    train: list[TrainingImage] = []
    test: list[TrainingImage] = []
    for folder in sorted(p for p in (DATA / "berlin").iterdir() if p.is_dir()):
        paths = _photos(folder)
        groups = near_duplicate_groups(paths)
        ids = sorted(set(groups))
        random.Random(f"{seed}:{folder.name}").shuffle(ids)
        held = set(ids[: round(len(ids) * test_fraction)])
        label = [Label(folder.name.replace("_", " "), None)]
        first: dict[int, Path] = {}
        for path, group in zip(paths, groups, strict=True):
            first.setdefault(group, path)
        # held out: one photo per group (distinct photos); training: a random capped share
        sight_test = [_image(first[g], label) for g in sorted(held)]
        sight_train = [_image(p, label) for p, g in zip(paths, groups, strict=True)
                       if g not in held]
        random.Random(seed).shuffle(sight_train)
        test += sight_test
        train += sight_train[:max_train_per_sight]
    return BenchmarkSet("berlin", train, test, _spread(test, 40), False)


def everyday(folder: Path | None) -> list[TrainingImage]:
    """Everyday photos of no sight (e.g. scikit-image's sample photos, see docs/detector.md)."""
    if folder is None or not folder.is_dir():
        return []
    return [_image(p, []) for p in _photos(folder)]


def as_folders(boxed: BenchmarkSet) -> BenchmarkSet:
    """The set imported as photo folders: every training label's box dropped (no background
    crops then, as for a folder city); held-out photos keep their boxes for judging."""
    train = [TrainingImage(im.key, im.load, [Label(lab.name, None) for lab in im.labels])
             for im in boxed.train if im.labels]
    return replace(boxed, name=f"{boxed.name}-folders", train=train)


def all_landmarks(seed: int) -> BenchmarkSet:
    """Every set's photos as one city of photo folders (no photos of no sight of its own)."""
    parts = [as_folders(towers(seed)), as_folders(intramuros(seed)), berlin(seed)]
    return BenchmarkSet(ALL_LANDMARKS, [im for part in parts for im in part.train],
                        [im for part in parts for im in part.test], [], False)


def load_set(name: str, seed: int) -> BenchmarkSet:
    """One of SETS, FOLDER_SETS or ALL_LANDMARKS by name."""
    if name == ALL_LANDMARKS:
        return all_landmarks(seed)
    if name in FOLDER_SETS:
        return as_folders(load_set(name.removesuffix("-folders"), seed))
    return {"towers": towers, "intramuros": intramuros, "berlin": berlin}[name](seed)
