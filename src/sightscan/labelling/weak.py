"""Weak labels: the sight a photo was collected for, boxed by the city's current model
when that model finds the same sight on it."""

from __future__ import annotations

from collections.abc import Callable

from sightscan.detections import Detection, Label
from sightscan.labelling.base import LabellingItem

Detect = Callable[[bytes], list[Detection]]


def same_sight(a: str, b: str) -> bool:
    """Names equal after case folding and whitespace/underscore normalisation."""

    def norm(s: str) -> str:
        return " ".join(s.replace("_", " ").casefold().split())

    return norm(a) == norm(b)


class WeakLabeller:
    """Free labels from the crawl: the sight hint, with a box from `detect` when it agrees."""

    def __init__(self, detect: Detect | None = None, *, min_score: float = 0.25) -> None:
        self._detect = detect
        self._min_score = min_score

    def label(self, item: LabellingItem) -> list[Label]:
        """[Label(sight_hint, box|None)], or [] when the photo has no sight hint."""
        if not item.sight_hint or not item.sight_hint.strip():
            return []
        name = " ".join(item.sight_hint.split())
        if self._detect is None:
            return [Label(name)]
        matches = [
            d
            for d in self._detect(item.image_bytes)
            if d.score >= self._min_score and same_sight(d.label, name)
        ]
        best = max(matches, key=lambda d: d.score, default=None)
        return [Label(name, best.box if best is not None else None)]
