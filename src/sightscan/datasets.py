"""Readers for photo sets on disk: one folder per sight, or YOLO (images/ + labels/).

Readers yield `DatasetItem`s (a photo path and its labels) and never touch the warehouse,
so the importer, the trainer's benchmark and the crawler's folder source share them.

An empty YOLO label file is read as "no box known", not as "no sight": the photo keeps no
label at all and is imported unlabelled (annotation gaps happen in real data, and a photo
counted as background while a sight is visible would teach the detector the wrong thing).
YOLO polygon lines (segmentation sets) become the polygon's box. A label line that cannot
be used is skipped and reported as a `LabelProblem` (file, line, reason) on its item, so an
import goes on and sums the problems up at the end.
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
RANGE_SLACK = 0.01  # annotation tools round coordinates just past the image edge
MIN_BOX_SIDE = 1e-4  # relative; narrower boxes are annotation slips, not sights


@dataclass(frozen=True, slots=True)
class LabelProblem:
    """A label line that was skipped: file, 1-based line number, reason and the line."""

    file: str
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}: {self.text!r}"


class LabelLineError(InvalidInputError):
    """A label line cannot be used; `problem` says where and why."""

    def __init__(self, problem: LabelProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True, slots=True)
class DatasetItem:
    """One photo on disk with what is known about it."""

    path: Path
    labels: list[Label] = field(default_factory=list)
    problems: list[LabelProblem] = field(default_factory=list)  # skipped label lines

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


def _yolo_box(values: list[float]) -> Box:
    """A box from `cx cy w h` or from polygon points `x1 y1 x2 y2 ...` (their extent)."""
    if len(values) == 4:
        cx, cy, w, h = values
        if not (0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0):
            raise ValueError("box centre out of range: expected 0 <= cx, cy <= 1")
        if w <= 0.0 or h <= 0.0:
            raise ValueError("zero-width or zero-height box")
        if w > 1.0 + RANGE_SLACK or h > 1.0 + RANGE_SLACK:
            raise ValueError("box size out of range: expected w, h <= 1")
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    else:
        if not all(-RANGE_SLACK <= v <= 1.0 + RANGE_SLACK for v in values):
            raise ValueError("polygon point out of range: expected 0 <= x, y <= 1")
        xs, ys = values[0::2], values[1::2]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(1.0, x2), min(1.0, y2)
    if x2 - x1 < MIN_BOX_SIDE or y2 - y1 < MIN_BOX_SIDE:
        raise ValueError("zero-width or zero-height box")
    return Box(x1, y1, x2, y2)


def parse_yolo_line(line: str, class_names: list[str]) -> Label | None:
    """One YOLO line -> a label (None for a blank line); ValueError says why it is unusable.

    `class cx cy w h` is a box; `class x1 y1 x2 y2 x3 y3 ...` (three or more points, as
    YOLO segmentation sets write them) is a polygon and becomes its extent.
    """
    parts = line.split()
    if not parts:
        return None
    count = len(parts) - 1
    if count != 4 and (count < 6 or count % 2):
        raise ValueError(
            f"expected `class cx cy w h` or `class x1 y1 x2 y2 x3 y3 ...`, got {count} values")
    try:
        class_id = int(parts[0])
        values = [float(v) for v in parts[1:]]
    except ValueError:
        raise ValueError("expected an integer class and numbers") from None
    if not all(math.isfinite(v) for v in values):  # NaN would slip through clipping
        raise ValueError("expected finite numbers")
    if not 0 <= class_id < len(class_names):
        raise ValueError(f"class {class_id} not in the {len(class_names)} names")
    return Label(class_names[class_id].replace("_", " "), _yolo_box(values))


def read_yolo_labels(
    text: str, class_names: list[str], source: str = ""
) -> tuple[list[Label], list[LabelProblem]]:
    """Every usable label of a YOLO label file, and a problem per line that is not usable."""
    labels: list[Label] = []
    problems: list[LabelProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            label = parse_yolo_line(line, class_names)
        except ValueError as exc:
            problems.append(LabelProblem(source, number, str(exc), line.strip()[:200]))
            continue
        if label is not None:
            labels.append(label)
    return labels, problems


def parse_yolo_labels(text: str, class_names: list[str], source: str = "") -> list[Label]:
    """Strict variant: the labels, or LabelLineError for the first unusable line."""
    labels, problems = read_yolo_labels(text, class_names, source)
    if problems:
        raise LabelLineError(problems[0])
    return labels


def _yolo_splits(root: Path) -> list[tuple[Path, Path]]:
    """(images, labels) folder pairs: `images/ + labels/`, or Roboflow's `<split>/images/`."""
    if (root / "images").is_dir():
        return [(root / "images", root / "labels")]
    return [
        (split / "images", split / "labels")
        for split in sorted(p for p in root.iterdir() if p.is_dir())
        if (split / "images").is_dir()
    ]


def read_yolo_dataset(root: Path) -> Iterator[DatasetItem]:
    """images/ + labels/ (or <split>/images + <split>/labels); names from data.yaml/classes.txt.

    Unusable label lines are skipped and kept on the item as `problems` (file and line).
    """
    root = Path(root)
    splits = _yolo_splits(root) if root.is_dir() else []
    if not splits:
        raise InvalidInputError(f"expected an images/ folder (or <split>/images/) in {root}")
    class_names = read_yolo_class_names(root)
    for images_root, labels_root in splits:
        for image in _images_in(images_root):
            label_file = _label_file_for(image, images_root, labels_root)
            if not label_file.is_file():
                yield DatasetItem(image)
                continue
            labels, problems = read_yolo_labels(
                label_file.read_text(encoding="utf-8", errors="replace"),
                class_names, str(label_file),
            )
            yield DatasetItem(image, labels, problems)


def read_dataset(root: Path, fmt: str) -> Iterator[DatasetItem]:
    """Dispatch on the format name: `folders` or `yolo`."""
    if fmt == "folders":
        return read_folder_dataset(root)
    if fmt == "yolo":
        return read_yolo_dataset(root)
    raise InvalidInputError(f"expected format folders or yolo, got {fmt!r}")
