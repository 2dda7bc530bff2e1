"""Readers for photo sets on disk: one folder per sight, or YOLO (images/ + labels/).

Readers yield `DatasetItem`s (a photo path and its labels) and never touch the warehouse,
so the importer, the trainer's benchmark and the crawler's folder source share them.

An empty YOLO label file is read as "no box known", not as "no sight": the photo keeps no
label at all and is imported unlabelled (annotation gaps happen in real data, and a photo
counted as background while a sight is visible would teach the detector the wrong thing).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sightscan.detections import Box, Label
from sightscan.errors import InvalidInputError

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".avif", ".heic", ".heif"
}


@dataclass(frozen=True, slots=True)
class DatasetItem:
    """One photo on disk with what is known about it."""

    path: Path
    labels: list[Label] = field(default_factory=list)

    @property
    def sight(self) -> str | None:
        """The first label's name, if any."""
        return self.labels[0].name if self.labels else None


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def read_folder_dataset(root: Path) -> Iterator[DatasetItem]:
    """One sub-folder per sight; every photo in it gets the folder name as label (no box)."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"expected a folder with one sub-folder per sight, got {root}")
    sight_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not sight_dirs:
        raise InvalidInputError(f"expected one sub-folder per sight in {root}, found none")
    for sight_dir in sight_dirs:
        name = sight_dir.name.replace("_", " ").strip()
        for path in _images_in(sight_dir):
            yield DatasetItem(path, [Label(name)])


def read_yolo_class_names(root: Path) -> list[str]:
    """Class names from data.yaml (`names:` list or mapping) or classes.txt."""
    classes_txt = root / "classes.txt"
    for yaml_name in ("data.yaml", "data.yml", "dataset.yaml"):
        yaml_path = root / yaml_name
        if yaml_path.is_file():
            return _names_from_yaml(yaml_path.read_text(encoding="utf-8"))
    if classes_txt.is_file():
        return [
            line.strip()
            for line in classes_txt.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    raise InvalidInputError(f"expected data.yaml or classes.txt with class names in {root}")


def _names_from_yaml(text: str) -> list[str]:
    """Read the `names` entry of a YOLO data.yaml (list, inline list or index mapping)."""
    import yaml

    data = yaml.safe_load(text) or {}
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    raise InvalidInputError("expected a `names:` list or mapping in data.yaml")


def _label_file_for(image: Path, images_root: Path, labels_root: Path) -> Path:
    return (labels_root / image.relative_to(images_root)).with_suffix(".txt")


def parse_yolo_labels(text: str, class_names: list[str], source: str = "") -> list[Label]:
    """Parse YOLO label lines `class cx cy w h` (relative) into labels with boxes."""
    labels: list[Label] = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 5:
            raise InvalidInputError(f"{source}:{number}: expected `class cx cy w h`, got {line!r}")
        try:
            class_id = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:5])
        except ValueError:
            raise InvalidInputError(f"{source}:{number}: expected numbers, got {line!r}") from None
        if not all(math.isfinite(v) for v in (cx, cy, w, h)):  # NaN would slip through clipping
            raise InvalidInputError(f"{source}:{number}: expected finite numbers, got {line!r}")
        if not 0 <= class_id < len(class_names):
            raise InvalidInputError(
                f"{source}:{number}: class {class_id} not in {len(class_names)} names"
            )
        labels.append(Label(class_names[class_id].replace("_", " "), Box.from_yolo(cx, cy, w, h)))
    return labels


def read_yolo_dataset(root: Path) -> Iterator[DatasetItem]:
    """images/ + labels/ (split sub-folders mirrored); names from data.yaml or classes.txt."""
    root = Path(root)
    images_root, labels_root = root / "images", root / "labels"
    if not images_root.is_dir():
        raise InvalidInputError(f"expected an images/ folder in {root}")
    class_names = read_yolo_class_names(root)
    for image in _images_in(images_root):
        label_file = _label_file_for(image, images_root, labels_root)
        labels: list[Label] = []
        if label_file.is_file():
            labels = parse_yolo_labels(
                label_file.read_text(encoding="utf-8"), class_names, str(label_file)
            )
        yield DatasetItem(image, labels)


def read_dataset(root: Path, fmt: str) -> Iterator[DatasetItem]:
    """Dispatch on the format name: `folders` or `yolo`."""
    if fmt == "folders":
        return read_folder_dataset(root)
    if fmt == "yolo":
        return read_yolo_dataset(root)
    raise InvalidInputError(f"expected format folders or yolo, got {fmt!r}")
