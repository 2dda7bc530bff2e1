"""The labeller interface: one photo in, a list of labels (sight name, optional box) out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sightscan.detections import Label
from sightscan.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class LabellingItem:
    """A stored photo to label, with its pixel size and what is known about it."""

    image_bytes: bytes
    width: int
    height: int
    sight_hint: str | None
    city: str

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise InvalidInputError(
                f"expected a positive image size, got {self.width}x{self.height}"
            )


class Labeller(Protocol):
    """Names the sights on a photo; [] when it sees none."""

    def label(self, item: LabellingItem) -> list[Label]:
        """Labels for `item` (relative boxes when positions are known)."""
        ...
