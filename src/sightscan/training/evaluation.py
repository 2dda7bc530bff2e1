"""Evaluation of an exported model (through onnxruntime, as clients run it) and the quality gate.

- mAP@0.5 and mAP@0.5:0.95: COCO style (greedy matching by score, 101-point interpolated
  precision), averaged over classes with at least one boxed sight; detections down to a
  score of 0.001 count, as in COCO. A detection of a class that the photo carries only as
  an image-level label (no box) is ignored, neither right nor wrong.
- top-1 accuracy: over labelled photos, the best detection above the model's threshold has
  a labelled class (no detection = wrong).
- negatives_clean_rate: share of background photos with no detection above the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sightscan.detections import Box, Detection
from sightscan.inference import Detector
from sightscan.training.dataset import TrainingImage

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
EVAL_MIN_SCORE = 0.001
EVAL_MAX_DETECTIONS = 100
ANSWER_KEEP_RATE = 0.97  # sight photos that keep their right answer (as the gate's KEEP_RATE)
# A new photo scores under the k-th lowest of n right scores with chance k / (n + 1), so the
# threshold may pass k - 1 of them only while k / (n + 1) <= 3%. Under 33 answered photos
# not even the lowest right score is safe (k = 0: a 9-photo split would lose 1 in 10 new
# photos there), so the rule is off.
MIN_ANSWERED_FOR_KEEP_RATE = math.ceil(1 / (1 - ANSWER_KEEP_RATE)) - 1


@dataclass(frozen=True, slots=True)
class Metrics:
    """Quality of one model on one set of photos."""

    map50: float
    map50_95: float
    top1_accuracy: float
    negatives_clean_rate: float | None
    per_class_ap50: dict[str, float] = field(default_factory=dict)
    per_class_ap50_95: dict[str, float] = field(default_factory=dict)
    images: int = 0
    negatives: int = 0
    score_threshold: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (for metadata, the warehouse and the API)."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        """Inverse of `as_dict` (e.g. from a model's metadata)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, slots=True)
class Prediction:
    """Ground truth and all scored detections (score >= 0.001) of one photo."""

    boxes: list[tuple[str, Box]]
    image_level: set[str]
    detections: list[Detection]

    @property
    def is_negative(self) -> bool:
        return not self.boxes and not self.image_level


def collect_predictions(model: Detector, images: Sequence[TrainingImage]) -> list[Prediction]:
    """Run the model once over photos, keeping low-score detections for AP and calibration."""
    loaded = [im.load() for im in images]
    detections = model.detect_many(loaded, EVAL_MIN_SCORE, agnostic=False,
                                   max_detections=EVAL_MAX_DETECTIONS)
    result = []
    for im, dets in zip(images, detections, strict=True):
        boxes = [(lab.name, lab.box) for lab in im.labels if lab.box is not None]
        level = {lab.name for lab in im.labels if lab.box is None} - {n for n, _ in boxes}
        result.append(Prediction(boxes, level, dets))
    return result


def _iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    ih = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = iw * ih
    return inter / (a.area + b.area - inter + 1e-12)


def average_precision(preds: Sequence[Prediction], name: str, iou_threshold: float) -> float | None:
    """COCO 101-point AP of one class at one IoU threshold; None without ground truth."""
    n_gt = sum(1 for p in preds for n, _ in p.boxes if n == name)
    if n_gt == 0:
        return None
    scored: list[tuple[float, int, Box]] = [
        (d.score, i, d.box) for i, p in enumerate(preds) if name not in p.image_level
        for d in p.detections if d.label == name
    ]
    scored.sort(key=lambda t: -t[0])
    used: dict[int, set[int]] = {}
    tp = np.zeros(len(scored))
    for k, (_, i, box) in enumerate(scored):
        gts = [(j, b) for j, (n, b) in enumerate(preds[i].boxes) if n == name]
        best, best_j = iou_threshold, -1
        for j, gt in gts:
            if j in used.get(i, set()):
                continue
            overlap = _iou(box, gt)
            if overlap >= best:
                best, best_j = overlap, j
        if best_j >= 0:
            used.setdefault(i, set()).add(best_j)
            tp[k] = 1
    if not scored:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, len(scored) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(sampled.mean())


def _kept(dets: list[Detection], threshold: float) -> list[Detection]:
    return [d for d in dets if d.score >= threshold]


def _answers_right(p: Prediction, threshold: float) -> bool:
    """The photo's best detection above the threshold has one of its labelled classes."""
    dets = _kept(p.detections, threshold)
    truth = {n for n, _ in p.boxes} | p.image_level
    return bool(dets) and max(dets, key=lambda d: d.score).label in truth


def _passable(answered: int) -> int:
    """How many of `answered` right scores the threshold may pass: k - 1 for the largest k
    with k / (answered + 1) <= 1 - ANSWER_KEEP_RATE, so that no more than that share of new
    photos falls under it (from MIN_ANSWERED_FOR_KEEP_RATE photos on, k >= 1)."""
    return math.floor(round((1 - ANSWER_KEEP_RATE) * (answered + 1), 9)) - 1


def _strictest_keeping_threshold(answered: Sequence[Prediction], grid: np.ndarray) -> float:
    """The highest threshold of `grid` that passes no more of the sight photos `answered`
    right at its lowest one than `_passable` allows; the lowest when too few are answered."""
    if len(answered) < MIN_ANSWERED_FOR_KEEP_RATE:
        return float(grid[0])
    must_keep = len(answered) - _passable(len(answered))
    keeping = [float(t) for t in grid
               if sum(_answers_right(p, float(t)) for p in answered) >= must_keep]
    return max(keeping) if keeping else float(grid[0])


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    """The calibrated score threshold: the higher of two candidates (model metadata)."""

    threshold: float
    balanced: float  # F1 plus clean negatives, middle of the best plateau
    keeping: float  # the highest that ANSWER_KEEP_RATE of new sight photos would pass
    answered: int  # validation sight photos answered right at the lowest threshold

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready form."""
        return asdict(self)


def choose_threshold(preds: Sequence[Prediction], default: float = 0.5) -> ThresholdChoice:
    """Score threshold maximising F1 (IoU 0.5, right class) plus the negatives' clean rate,
    raised further while ANSWER_KEEP_RATE of new sight photos would keep their right answer;
    with both candidates, so the metadata can say which one won."""
    if not preds:
        return ThresholdChoice(default, default, default, 0)
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    values = []
    negatives = [p for p in preds if p.is_negative]
    for t in grid:
        tp = fp = fn = 0
        for p in preds:
            dets = _kept(p.detections, t)
            matched: set[int] = set()
            for d in dets:
                hit = next((j for j, (n, b) in enumerate(p.boxes)
                            if j not in matched and n == d.label and _iou(d.box, b) >= 0.5), None)
                if hit is not None:
                    matched.add(hit)
                    tp += 1
                elif d.label not in p.image_level:
                    fp += 1
            level_hits = {d.label for d in dets} & p.image_level
            tp += len(level_hits)
            fn += len(p.boxes) - len(matched) + len(p.image_level - level_hits)
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        clean = (sum(not _kept(p.detections, t) for p in negatives) / len(negatives)
                 if negatives else 0.0)
        values.append(f1 + clean)
    scores = np.array(values)
    best = np.flatnonzero(scores >= scores.max() - 1e-9)
    balanced = float(grid[best[len(best) // 2]])  # middle of the best plateau: robust on few
    # F1 is flat over a wide range when the validation photos hold few negatives (a city of
    # photo folders holds none): the keep rate then says how far the threshold may rise.
    answered = [p for p in preds if not p.is_negative and _answers_right(p, float(grid[0]))]
    keeping = _strictest_keeping_threshold(answered, grid)
    return ThresholdChoice(max(balanced, keeping), balanced, keeping, len(answered))


def metrics_from_predictions(preds: Sequence[Prediction], class_names: Sequence[str],
                             threshold: float) -> Metrics:
    """Metrics from collected predictions at a given score threshold."""
    ap50: dict[str, float] = {}
    ap: dict[str, float] = {}
    for name in class_names:
        per_iou = [average_precision(preds, name, float(t)) for t in IOU_THRESHOLDS]
        if per_iou[0] is None:
            continue
        values = [v for v in per_iou if v is not None]
        ap50[name], ap[name] = values[0], float(np.mean(values))
    labelled = [p for p in preds if not p.is_negative]
    correct = sum(_answers_right(p, threshold) for p in labelled)
    negatives = [p for p in preds if p.is_negative]
    clean = (sum(not _kept(p.detections, threshold) for p in negatives) / len(negatives)
             if negatives else None)
    return Metrics(
        map50=float(np.mean(list(ap50.values()))) if ap50 else 0.0,
        map50_95=float(np.mean(list(ap.values()))) if ap else 0.0,
        top1_accuracy=correct / len(labelled) if labelled else 0.0,
        negatives_clean_rate=clean,
        per_class_ap50=ap50,
        per_class_ap50_95=ap,
        images=len(preds),
        negatives=len(negatives),
        score_threshold=threshold,
    )


def evaluate(model: Detector, images: list[TrainingImage], class_names: Sequence[str]) -> Metrics:
    """mAP@0.5, mAP@0.5:0.95, top-1 accuracy, per-class AP and negatives' clean rate."""
    preds = collect_predictions(model, images)
    return metrics_from_predictions(preds, class_names, model.score_threshold)


def is_not_worse(new: Metrics, current: Metrics, tolerance: float = 0.01) -> bool:
    """Publish gate: mAP@0.5:0.95 and negatives' clean rate each at most `tolerance` below."""
    if new.map50_95 < current.map50_95 - tolerance:
        return False
    if new.negatives_clean_rate is not None and current.negatives_clean_rate is not None:
        return new.negatives_clean_rate >= current.negatives_clean_rate - tolerance
    return True
