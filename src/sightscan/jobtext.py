"""Job progress and model metrics in words, for `sightscan status` and the API's metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

METRICS_EXPLAINED = {
    "map50": "mAP@0.5: how well boxes find each sight (a box counts when it overlaps the "
    "true box by half or more), 0 to 1. Photos labelled without boxes give it nothing to "
    "measure: a city trained from such photos reports 0.0 here, judge it by top-1 accuracy.",
    "map50_95": "mAP@0.5:0.95: as mAP@0.5, averaged over stricter overlaps (0.5 to 0.95); "
    "the quality gate compares models by it. 0.0 as well without boxes.",
    "top1_accuracy": "top-1 accuracy: share of validation photos whose best detection names "
    "the right sight (boxes not needed).",
    "negatives_clean_rate": "negatives without detection: share of photos without any "
    "known sight on which nothing was detected.",
}
_RUNNING = {"crawl": "crawling", "label": "labelling", "train": "training: starting"}
_HIDDEN = {"phase", "done", "total", "epoch", "epochs", "loss", "reason"}


def describe_counts(stage: str, state: str, counts: Mapping[str, Any]) -> str:
    """A job's counts as a short phrase: its phase while running, what it did when done."""
    if not counts:
        if state == "queued":
            return "waiting for a worker"
        return f"{_RUNNING.get(stage, stage)} …" if state == "running" else "-"
    parts: list[str] = []
    if "phase" in counts:
        phase = str(counts["phase"])
        if counts.get("total"):
            phase += f" {counts.get('done', 0)}/{counts['total']}"
        if counts.get("epochs"):
            phase += f" epoch {counts.get('epoch', 0)}/{counts['epochs']}"
            if isinstance(counts.get("loss"), int | float):
                phase += f", loss {counts['loss']:.3f}"
        parts.append(phase)
    if stage == "train" and "published" in counts:
        published = counts.get("published")
        parts.append(f"published version {counts.get('version')}" if published
                     else "nothing published")
        for key, title in (("map50", "mAP@0.5"), ("top1_accuracy", "top-1 accuracy")):
            if isinstance(counts.get(key), int | float):
                parts.append(f"{title} {counts[key]:.3f}")
        return ", ".join(parts)
    parts.extend(
        f"{key.replace('_', ' ')} {value}"
        for key, value in counts.items()
        if key not in _HIDDEN and value is not None and key != "published"
    )
    return ", ".join(parts)
