"""Job progress in words: what `sightscan status` shows instead of raw counts."""

from __future__ import annotations

from sightscan.jobtext import METRICS_EXPLAINED, describe_counts


def test_a_training_job_without_counts_yet_says_it_is_starting() -> None:
    assert describe_counts("train", "running", {}) == "training: starting …"
    assert describe_counts("crawl", "queued", {}) == "waiting for a worker"


def test_the_phase_of_a_running_training_is_shown_with_its_position() -> None:
    assert describe_counts("train", "running", {"phase": "decoding photos", "done": 12,
                                                "total": 150}) == "decoding photos 12/150"
    text = describe_counts("train", "running",
                           {"phase": "training", "epoch": 3, "epochs": 40, "loss": 0.51234})
    assert text == "training epoch 3/40, loss 0.512"


def test_a_finished_training_names_its_version_and_both_measures() -> None:
    counts = {"classes": 3, "published": True, "version": 2, "map50": 0.0, "map50_95": 0.0,
              "top1_accuracy": 0.85, "reason": None}
    assert describe_counts("train", "done", counts) == (
        "published version 2, mAP@0.5 0.000, top-1 accuracy 0.850")


def test_other_counts_read_as_words() -> None:
    assert describe_counts("label", "done", {"weak": 40, "vision+weak": 2}) == (
        "weak 40, vision+weak 2")


def test_the_metrics_explanation_says_why_map_is_zero_without_boxes() -> None:
    assert "without boxes" in METRICS_EXPLAINED["map50"]
    assert "top-1 accuracy" in METRICS_EXPLAINED["map50"]
