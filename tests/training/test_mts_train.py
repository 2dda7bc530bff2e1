from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from mts_synthetic import SHAPES, make_images

from sightscan.detections import Label
from sightscan.errors import TrainingError
from sightscan.inference import Detector
from sightscan.training import (
    TrainConfig,
    TrainingImage,
    assemble_training_set,
    evaluate,
    train_detector,
)
from sightscan.training.dataset import TrainingSet
from sightscan.training.export import METADATA_KEY, read_metadata
from sightscan.training.model import SightNet
from sightscan.training.rejection import embed_batches
from sightscan.training.trainer import (
    TrainedModel,
    TrainProgress,
    _embedder,
    _FrozenPart,
    _low_res_size,
)


def test_the_detector_learns_generated_shapes_and_ignores_empty_photos(
        trained: TrainedModel) -> None:
    detector = Detector.from_bytes(trained.onnx)
    metrics = evaluate(detector, make_images(8, 12, seed=123), sorted(SHAPES))
    # Chance is near 0 for mAP (boxes must overlap) and the photos without a shape must
    # stay clean at the calibrated threshold.
    assert metrics.map50 >= 0.6
    assert metrics.negatives_clean_rate is not None and metrics.negatives_clean_rate >= 0.8
    assert metrics.top1_accuracy >= 0.45  # chance: 1/3 (and no detection counts as wrong)


def test_the_model_file_is_valid_onnx_with_the_metadata_embedded(trained: TrainedModel) -> None:
    model = onnx.load_from_string(trained.onnx)
    onnx.checker.check_model(model)
    assert METADATA_KEY in {p.key for p in model.metadata_props}
    metadata = read_metadata(trained.onnx)
    assert metadata == trained.metadata
    assert metadata["class_names"] == sorted(SHAPES)
    assert metadata["input"]["dtype"] == "uint8" and metadata["input"]["layout"] == "NHWC"
    assert metadata["backbone_license"] == "Apache-2.0 (efficientnet-lite-pytorch)"
    assert metadata["metrics"]["map50"] == pytest.approx(trained.metrics.map50, abs=1e-4)
    assert metadata["training"]["train_images"] > 0
    assert 0.05 <= metadata["score_threshold"] <= 0.95
    choice = metadata["score_threshold_choice"]  # the higher of the two candidates won
    assert choice["threshold"] == metadata["score_threshold"]
    assert choice["threshold"] == max(choice["balanced"], choice["keeping"])
    assert len(trained.onnx) < 20_000_000


def test_the_report_is_a_png_and_the_loss_went_down(trained: TrainedModel) -> None:
    assert trained.report_png.startswith(b"\x89PNG\r\n\x1a\n")
    assert trained.history[-1]["loss"] < trained.history[0]["loss"]


def _tiny_set(boxes: bool = True) -> TrainingSet:
    training_set: TrainingSet = assemble_training_set(
        make_images(6, 4, seed=5, size=64, boxes=boxes), city=None, min_images_per_label=2,
        decode_size=64)
    return training_set


def test_training_is_deterministic_for_a_seed_and_reports_progress() -> None:
    training_set = _tiny_set()
    config = TrainConfig(epochs=2, image_size=64, batch_size=8, threads=1, seed=7)
    events: list[TrainProgress] = []
    first = train_detector(training_set, config, events.append)
    second = train_detector(training_set, config)
    assert first.history == second.history
    assert first.metrics == second.metrics
    assert (events[-1].epoch, events[-1].step) == (2, events[-1].steps)
    assert events[-1].eta_s == 0


def test_a_checkpoint_lets_a_longer_run_resume(tmp_path: Path) -> None:
    training_set = _tiny_set()
    checkpoint = tmp_path / "run.pt"
    base = {"image_size": 64, "batch_size": 8, "threads": 1, "checkpoint_path": checkpoint}
    train_detector(training_set, TrainConfig(epochs=1, **base))
    assert checkpoint.is_file()
    resumed = train_detector(training_set, TrainConfig(epochs=2, **base))
    assert [h["epoch"] for h in resumed.history] == [1.0, 2.0]


def test_photos_with_image_level_labels_train_through_the_multiple_instance_loss() -> None:
    boxed = make_images(4, 2, seed=5, size=64)
    level = [TrainingImage(f"level-{im.key}", im.load, [Label(im.labels[0].name)])
             for im in make_images(3, 0, seed=6, size=64)]
    training_set = assemble_training_set(boxed + level, city=None, min_images_per_label=2,
                                         decode_size=64)
    result = train_detector(training_set, TrainConfig(epochs=1, image_size=64, batch_size=8,
                                                      threads=1))
    assert result.history[0]["mil"] > 0
    assert result.metadata["class_names"] == sorted(SHAPES)


@pytest.mark.parametrize("field, value", [("epochs", 0), ("image_size", 100), ("device", "tpu"),
                                          ("frozen_blocks", 17), ("low_res_fraction", 1.0)])
def test_invalid_training_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(TrainingError):
        TrainConfig(**{field: value})



@pytest.mark.parametrize("frozen_blocks", [5, 11, 16])
def test_the_frozen_part_runs_through_onnxruntime_like_torch_at_any_training_size(
        frozen_blocks: int) -> None:
    net = SightNet(3, 96, frozen_blocks=frozen_blocks).eval()
    frozen = _FrozenPart(net, torch.device("cpu"), threads=1)
    assert frozen.session is not None
    for size in (64, 96):
        pixels = torch.rand(2, 3, size, size) * 255
        with torch.no_grad():
            expected = net.frozen_features(pixels)
            got = frozen(pixels)
            # the stride-8 and stride-16 taps come out of the frozen part when it covers them
            assert len(got) == len(expected) == 1 + (frozen_blocks > 5) + (frozen_blocks > 11)
            assert all(torch.allclose(a, b, atol=1e-3) for a, b in zip(got, expected, strict=True))
            assert torch.allclose(net.forward_from_frozen(got)[0],
                                  net.forward_from_frozen(expected)[0], atol=1e-3)
    assert (_low_res_size(256), _low_res_size(320), _low_res_size(96)) == (192, 224, 96)


@pytest.mark.parametrize("frozen_blocks", [11, 16])
def test_the_gate_embeds_photos_through_onnxruntime_like_torch(frozen_blocks: int) -> None:
    net = SightNet(3, 96, frozen_blocks=frozen_blocks).eval()
    generator = np.random.default_rng(0)
    photos = [generator.integers(0, 256, (80 + 7 * i, 120 - 5 * i, 3), dtype=np.uint8)
              for i in range(5)]  # any size: each photo is stretched to the model's
    with torch.no_grad():  # the same photos through torch's eager kernels
        expected = embed_batches(lambda batch: net.embed(torch.from_numpy(batch)).numpy(),
                                 net.image_size, photos, batch_size=2)
    got = _embedder(net, threads=1)(photos)
    assert got.shape == expected.shape == (5, 320)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert not np.allclose(got[0], got[1], atol=1e-2)  # the photos differ, so do their features
