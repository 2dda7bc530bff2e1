"""Detect sights in photo files (`sightscan detect`): read, check, detect, draw.

A file that cannot be used (missing, a folder, not an image) becomes a result with its
reason instead of stopping the run, and drawn outputs never overwrite each other when
photos share a file name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from sightscan.detections import Detection
from sightscan.errors import InvalidInputError
from sightscan.images import decode_checked_rgb, read_photo
from sightscan.inference import Detector, draw_detections


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """One photo's detections (and where its drawing went), or why it was skipped."""

    photo: Path
    detections: list[Detection] = field(default_factory=list)
    drawn: Path | None = None
    error: str | None = None


def drawing_paths(photos: Sequence[Path], folder: Path) -> dict[Path, Path]:
    """One output file per photo: photos sharing a file name get -2, -3… instead of overwriting."""
    taken: set[str] = set()
    paths: dict[Path, Path] = {}
    for photo in photos:
        if photo in paths:
            continue
        name, number = f"{photo.stem}.jpg", 1
        while name.lower() in taken:
            number += 1
            name = f"{photo.stem}-{number}.jpg"
        taken.add(name.lower())
        paths[photo] = folder / name
    return paths


def _decoded(photo: Path, max_pixels: int) -> Image.Image | str:
    """The photo checked and decoded in one pass, or the reason it cannot be used (starting
    with its path)."""
    try:
        return decode_checked_rgb(read_photo(photo), max_pixels=max_pixels)
    except InvalidInputError as exc:
        message = str(exc)
        return message if message.startswith(str(photo)) else f"{photo}: {message}"


def detect_files(
    photos: Sequence[Path],
    load_detector: Callable[[], Detector],
    *,
    max_pixels: int,
    draw: Path | None = None,
    debug: bool = False,
) -> Iterator[PhotoResult]:
    """Results in the order of `photos`; the model is loaded at the first usable photo.

    Drawings are named from the whole list (`drawing_paths`), so a photo's output name
    does not depend on which other photos could be read."""
    outputs = drawing_paths(photos, draw) if draw is not None else {}
    detector: Detector | None = None
    for photo in photos:
        image = _decoded(photo, max_pixels)
        if isinstance(image, str):
            yield PhotoResult(photo, error=image)
            continue
        detector = detector or load_detector()
        detections = detector.detect(image)
        drawn = outputs.get(photo)
        if drawn is not None:
            drawn.parent.mkdir(parents=True, exist_ok=True)
            draw_detections(image, detections, debug=debug).save(drawn)
        yield PhotoResult(photo, detections, drawn)
