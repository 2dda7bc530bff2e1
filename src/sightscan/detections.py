"""Shared typed objects: boxes and detections, relative coordinates in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sightscan.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box, corners relative to the image size (upper-left, lower-right)."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value != value:
                raise InvalidInputError(f"expected a number for {name}, got {value!r}")
        if not (0.0 <= self.x1 < self.x2 <= 1.0 and 0.0 <= self.y1 < self.y2 <= 1.0):
            raise InvalidInputError(
                "expected 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1, "
                f"got ({self.x1}, {self.y1}, {self.x2}, {self.y2})"
            )

    @classmethod
    def from_yolo(cls, cx: float, cy: float, w: float, h: float) -> Box:
        """From YOLO's centre/size format, clipped to the image."""
        return cls(
            max(0.0, cx - w / 2), max(0.0, cy - h / 2), min(1.0, cx + w / 2), min(1.0, cy + h / 2)
        )

    @classmethod
    def from_seed(cls, data: dict[str, Any]) -> Box:
        """From the seed's BoundingBoxLabels keys (ulx, uly, lrx, lry)."""
        try:
            return cls(
                float(data["ulx"]), float(data["uly"]), float(data["lrx"]), float(data["lry"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"expected keys ulx, uly, lrx, lry with numbers: {exc}"
            ) from None

    def as_list(self) -> list[float]:
        """[x1, y1, x2, y2]."""
        return [self.x1, self.y1, self.x2, self.y2]

    def as_yolo(self) -> tuple[float, float, float, float]:
        """(cx, cy, w, h)."""
        return (
            (self.x1 + self.x2) / 2,
            (self.y1 + self.y2) / 2,
            self.x2 - self.x1,
            self.y2 - self.y1,
        )

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)


@dataclass(frozen=True, slots=True)
class Label:
    """A sight name on an image, with a box when its position is known."""

    name: str
    box: Box | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError(f"expected a non-empty label name, got {self.name!r}")
        if len(self.name) > 200:
            raise InvalidInputError(
                f"expected a label name of at most 200 characters, got {len(self.name)}"
            )


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected sight: name, confidence in [0, 1] and box."""

    label: str
    score: float
    box: Box

    def as_dict(self) -> dict[str, Any]:
        """The public JSON shape: {"label", "score", "box": [x1, y1, x2, y2]}."""
        return {
            "label": self.label,
            "score": round(float(self.score), 4),
            "box": [round(v, 4) for v in self.box.as_list()],
        }
