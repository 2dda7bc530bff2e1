"""Labels sent by a user with a photo: validated once here, then passed through unchanged."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sightscan.detections import Box, Label
from sightscan.errors import InvalidInputError
from sightscan.labelling.base import LabellingItem

MAX_USER_LABELS = 50


def parse_user_labels(raw: Iterable[Any]) -> list[Label]:
    """Labels from JSON: {"label"|"name": str, "box": [x1, y1, x2, y2] | {ulx..lry} | null}."""
    if isinstance(raw, str | bytes | dict) or not isinstance(raw, Iterable):
        raise InvalidInputError("expected a list of labels")
    labels: list[Label] = []
    for index, entry in enumerate(raw):
        if index >= MAX_USER_LABELS:
            raise InvalidInputError(f"expected at most {MAX_USER_LABELS} labels per photo")
        if not isinstance(entry, dict):
            raise InvalidInputError(
                f"expected label {index} as an object, got {type(entry).__name__}"
            )
        name = entry.get("label", entry.get("name"))
        if not isinstance(name, str):
            raise InvalidInputError(f"expected label {index} to have a `label` name")
        labels.append(Label(" ".join(name.split()), _parse_box(entry.get("box"), index)))
    return labels


def _parse_box(box: Any, index: int) -> Box | None:
    if box is None:
        return None
    if isinstance(box, dict):
        return Box.from_seed(box)
    if isinstance(box, list | tuple) and len(box) == 4:
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
            raise InvalidInputError(f"expected numbers in the box of label {index}")
        return Box(*(float(v) for v in box))
    raise InvalidInputError(f"expected the box of label {index} as [x1, y1, x2, y2]")


class UserLabeller:
    """A labeller for one upload: returns the labels the user sent with it."""

    def __init__(self, labels: Sequence[Label]) -> None:
        self._labels = list(labels)

    def label(self, item: LabellingItem) -> list[Label]:
        """The user's labels, whatever the photo."""
        return list(self._labels)
