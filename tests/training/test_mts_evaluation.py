from collections.abc import Iterable

import pytest

from sightscan.detections import Box, Detection
from sightscan.training.evaluation import (
    Metrics,
    Prediction,
    average_precision,
    choose_threshold,
    is_not_worse,
    metrics_from_predictions,
)

BOX = Box(0.2, 0.2, 0.6, 0.8)


def _pred(dets: list[Detection], boxes: Iterable[tuple[str, Box]] = (("tower", BOX),),
          level: Iterable[str] = ()) -> Prediction:
    return Prediction(list(boxes), set(level), list(dets))


def test_perfect_detections_score_an_ap_of_one_at_every_iou() -> None:
    preds = [_pred([Detection("tower", 0.9, BOX)]) for _ in range(3)]
    metrics = metrics_from_predictions(preds, ["tower"], 0.5)
    assert metrics.map50 == pytest.approx(1.0)
    assert metrics.map50_95 == pytest.approx(1.0)
    assert metrics.top1_accuracy == 1.0


def test_a_loose_box_counts_at_iou_05_but_not_at_high_thresholds() -> None:
    loose = Box(0.2, 0.2, 0.6, 0.62)  # IoU 0.7 with BOX
    preds = [_pred([Detection("tower", 0.9, loose)])]
    assert average_precision(preds, "tower", 0.5) == pytest.approx(1.0)
    assert average_precision(preds, "tower", 0.75) == pytest.approx(0.0)


def test_missing_half_the_sights_gives_the_coco_101_point_value() -> None:
    preds = [_pred([Detection("tower", 0.9, BOX)]), _pred([])]
    # Precision 1 up to recall 0.5: points 0.00..0.50 are 51 of 101.
    assert average_precision(preds, "tower", 0.5) == pytest.approx(51 / 101)


def test_a_class_without_ground_truth_has_no_ap() -> None:
    assert average_precision([_pred([])], "bridge", 0.5) is None


def test_detections_of_an_image_level_class_are_neither_right_nor_wrong() -> None:
    preds = [_pred([Detection("tower", 0.9, BOX)]),
             _pred([Detection("bridge", 0.95, BOX)], boxes=(), level=("bridge",))]
    assert average_precision(preds, "tower", 0.5) == pytest.approx(1.0)


def test_the_calibrated_threshold_separates_sights_from_background() -> None:
    positives = [_pred([Detection("tower", 0.8, BOX)]) for _ in range(4)]
    negatives = [_pred([Detection("tower", 0.3, BOX)], boxes=()) for _ in range(4)]
    threshold = choose_threshold(positives + negatives).threshold
    assert 0.3 < threshold <= 0.8
    metrics = metrics_from_predictions(positives + negatives, ["tower"], threshold)
    assert metrics.negatives_clean_rate == 1.0


def _folder_city(scores: list[float]) -> list[Prediction]:
    """Validation photos of a city of photo folders: photo-level labels, no background."""
    return [_pred([Detection("gate", s, BOX), Detection("wall", s / 4, BOX)], boxes=(),
                  level=("gate",)) for s in scores]


def _top1(preds: list[Prediction], at: float) -> float:
    return metrics_from_predictions(preds, ["gate", "wall"], at).top1_accuracy


def test_without_negatives_the_threshold_rises_while_3_percent_of_new_photos_stay_above() -> None:
    # A city of photo folders: no background photo in its validation split, so F1 is flat
    # below the lowest right score. A new photo scores under the k-th lowest of 100 right
    # scores with chance k / 101, so the threshold may pass 2 of them (3 / 101 <= 3%): every
    # score above it is one an unknown photo must beat.
    preds = _folder_city([0.30 + 0.006 * k for k in range(100)])
    choice = choose_threshold(preds)  # as the model metadata records it
    threshold = choice.threshold
    assert threshold > 0.30  # F1 alone: anywhere from 0.23 to 0.30
    assert _top1(preds, threshold) >= 0.98 > _top1(preds, threshold + 0.01)
    assert choice.answered == 100
    assert choice.balanced <= 0.30 < choice.keeping == threshold


def test_from_33_answered_photos_the_threshold_rises_to_the_lowest_right_score() -> None:
    # 1 / 34 <= 3%: the threshold may pass none of them, but rises up to the lowest
    preds = _folder_city([0.40 + 0.01 * k for k in range(33)])
    threshold = choose_threshold(preds).threshold
    assert threshold == pytest.approx(0.40)
    assert _top1(preds, threshold) == 1.0


def test_too_few_answered_photos_for_a_3_percent_allowance_leave_the_threshold() -> None:
    # 32 photos: the lowest right score still loses 1 in 33 new photos (over 3%), so the
    # threshold stays where F1 put it (anywhere from 0.05 to 0.40)
    preds = _folder_city([0.40 + 0.01 * k for k in range(32)])
    assert choose_threshold(preds).threshold < 0.39


def test_negatives_that_need_a_higher_threshold_keep_it() -> None:
    # the balance of F1 and clean negatives may cost more than 3% of the answers: it stands
    positives = [_pred([Detection("tower", 0.3 + 0.1 * (k % 6), BOX)]) for k in range(60)]
    negatives = [_pred([Detection("tower", 0.55, BOX)], boxes=()) for _ in range(60)]
    threshold = choose_threshold(positives + negatives).threshold
    assert threshold > 0.55


def _metrics(map50_95: float, clean: float | None) -> Metrics:
    return Metrics(map50=0.9, map50_95=map50_95, top1_accuracy=0.9, negatives_clean_rate=clean)


def test_the_quality_gate_allows_a_tolerance_and_blocks_a_regression() -> None:
    current = _metrics(0.70, 0.95)
    assert is_not_worse(_metrics(0.695, 0.95), current, tolerance=0.01)
    assert not is_not_worse(_metrics(0.60, 0.99), current, tolerance=0.01)
    assert not is_not_worse(_metrics(0.80, 0.80), current, tolerance=0.01)
    assert is_not_worse(_metrics(0.70, None), current, tolerance=0.01)


def test_metrics_round_trip_through_a_dict() -> None:
    metrics = Metrics(0.9, 0.7, 0.8, 1.0, {"a": 0.9}, {"a": 0.7}, 10, 2, 0.4)
    assert Metrics.from_dict(metrics.as_dict()) == metrics
