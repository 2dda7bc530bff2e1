"""int8 quantisation of a trained model: same contract, smaller, chosen only when it holds up."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any, cast

import numpy as np
import onnx
import pytest

from sightscan.inference import Detector
from sightscan.training.dataset import TrainingImage, TrainingSet, decode_landmarks
from sightscan.training.export import read_metadata, set_rejection_threshold
from sightscan.training.quantize import (
    PhotoCalibrationReader,
    calibration_photos,
    choose_served_model,
    quantize_model,
    regate,
)
from sightscan.training.rejection import DISABLED
from sightscan.training.trainer import TrainedModel


@pytest.fixture(scope="module")
def calibration(synthetic_training_set: TrainingSet) -> list[np.ndarray]:
    return calibration_photos([s.pixels for s in synthetic_training_set.train], 96, limit=16)


@pytest.fixture(scope="module")
def open_model(trained: TrainedModel) -> bytes:
    """The float model with its open-set gate open: these tests are about int8 fidelity
    (whether the gated int8 model is served is decided on its metrics, tested below)."""
    return set_rejection_threshold(trained.onnx, DISABLED)


@pytest.fixture(scope="module")
def int8_model(open_model: bytes, calibration: list[np.ndarray]) -> bytes:
    return quantize_model(open_model, calibration)


def test_the_calibration_reader_feeds_each_photo_once_per_pass(
        calibration: list[np.ndarray]) -> None:
    reader = PhotoCalibrationReader(calibration[:3])
    feeds = [reader.get_next() for _ in range(4)]
    assert [cast("dict[str, np.ndarray]", f)["image"].shape
            for f in feeds[:3]] == [(1, 96, 96, 3)] * 3 and feeds[3] is None
    reader.rewind()
    assert reader.get_next() is not None


def test_the_int8_model_keeps_the_client_contract_and_metadata(trained: TrainedModel,
                                                                int8_model: bytes) -> None:
    detector = Detector.from_bytes(int8_model)  # refuses anything but image -> boxes, scores
    assert detector.class_names == Detector.from_bytes(trained.onnx).class_names
    assert read_metadata(int8_model)["precision"] == "int8"
    graph = onnx.load_from_string(int8_model).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8_weights, "Conv weights should be stored as int8"
    assert len(int8_model) < len(trained.onnx) / 2.5


def test_the_stem_and_the_class_layer_stay_float_and_the_box_layer_is_int8(
        int8_model: bytes) -> None:
    graph = onnx.load_from_string(int8_model).graph
    int8_weights = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    producers = {out: node for node in graph.node for out in node.output}

    def weight_is_int8(weight: str) -> bool:
        conv = next(n for n in graph.node if n.op_type == "Conv" and n.input[1].startswith(weight))
        producer = producers.get(conv.input[1])  # a DequantizeLinear of int8 weights, or none
        return producer is not None and producer.input[0] in int8_weights

    assert weight_is_int8("net.reg_out.weight")
    assert not weight_is_int8("net.cls_out.weight")
    assert not weight_is_int8("net.stem.0.weight")


def test_the_gate_and_the_box_vote_stay_float(int8_model: bytes) -> None:
    """MatMuls without weights (votes x boxes) or with the gate's constants (stored int8 by
    the gate itself, rebuilt by regate) get no int8 pair on what they compute from."""
    graph = onnx.load_from_string(int8_model).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    matmuls = [node for node in graph.node if node.op_type == "MatMul"]
    votes = [node for node in matmuls if not any(i.startswith("gate.") for i in node.input)]
    assert len(votes) == 1 and len(matmuls) > 1
    assert all(producers.get(name) != "DequantizeLinear" for name in votes[0].input)
    assert all(producers.get(node.input[0]) != "DequantizeLinear" for node in matmuls)


def test_relu6_between_int8_convs_leaves_the_graph(open_model: bytes, int8_model: bytes
                                                  ) -> None:
    """A Clip between two quantised Convs would cost a DequantizeLinear and a QuantizeLinear
    per layer (about 40% of the int8 model's time); its range goes into the Conv's output."""
    graph = onnx.load_from_string(int8_model).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    sandwiched = [node.name for node in graph.node if node.op_type == "Clip"
                  and producers.get(node.input[0]) == "DequantizeLinear"
                  and consumers.get(node.output[0]) == {"QuantizeLinear"}]
    float_clips = sum(n.op_type == "Clip" for n in onnx.load_from_string(open_model).graph.node)
    int8_clips = sum(n.op_type == "Clip" for n in graph.node)
    assert sandwiched == [] and int8_clips < float_clips / 2


def test_the_int8_model_answers_like_the_float_model(open_model: bytes, int8_model: bytes,
                                                     synthetic_training_set: TrainingSet) -> None:
    photos = np.stack([s.pixels for s in synthetic_training_set.val[:8]])
    float_boxes, float_scores = Detector.from_bytes(open_model).raw_outputs(photos)
    int8_boxes, int8_scores = Detector.from_bytes(int8_model).raw_outputs(photos)
    assert float(np.abs(float_scores - int8_scores).mean()) < 0.02
    assert float(np.abs(float_boxes - int8_boxes).mean()) < 0.02


@pytest.mark.slow
def test_int8_is_served_when_it_holds_up_and_the_reason_is_recorded(
        trained: TrainedModel, calibration: list[np.ndarray],
        synthetic_training_set: TrainingSet) -> None:
    val = synthetic_training_set.val_images()
    served = choose_served_model(trained.onnx, trained.metrics, calibration=calibration,
                                 val_images=val, class_names=synthetic_training_set.class_names,
                                 tolerance=1.0)
    assert served.precision == "int8" and served.record["served"] == "int8", served.reason
    assert served.record["int8_bytes"] == len(served.onnx) < served.record["float_bytes"]
    assert "int8_metrics" in served.record and served.reason


@pytest.mark.slow
@pytest.mark.parametrize(("limits", "reason"), [({"max_bytes": 1000}, "over 1000"),
                                                ({"tolerance": -1.0}, "below the float")])
def test_the_float_model_is_served_when_int8_falls_short(
        trained: TrainedModel, calibration: list[np.ndarray], synthetic_training_set: TrainingSet,
        limits: dict[str, Any], reason: str) -> None:
    served = choose_served_model(trained.onnx, trained.metrics, calibration=calibration,
                                 val_images=synthetic_training_set.val_images(),
                                 class_names=synthetic_training_set.class_names, **limits)
    assert served.precision == "float32" and served.onnx == trained.onnx
    assert reason in served.reason and served.record["served"] == "float32"


def _stored_bank(model: bytes) -> np.ndarray:
    """The gate's bank as the graph restores it: int8 values times a scale per photo."""
    found = {t.name: onnx.numpy_helper.to_array(t)
             for t in onnx.load_from_string(model).graph.initializer}
    bank: np.ndarray = found["gate.bank_int8"].astype(np.float32) * found["gate.bank_scale"]
    return bank


def test_the_int8_gate_is_rebuilt_on_the_int8_features(
        trained: TrainedModel, calibration: list[np.ndarray],
        synthetic_training_set: TrainingSet) -> None:
    int8 = quantize_model(trained.onnx, calibration)
    rebuilt = regate(int8, synthetic_training_set.train, synthetic_training_set.val)
    graph = onnx.load_from_string(rebuilt).graph
    gate_matmuls = [n for n in graph.node if n.op_type == "MatMul"
                    and any(name.startswith("gate.") for name in n.input)]
    assert gate_matmuls, "the gate's MatMuls must stay float"
    float_bank, int8_bank = (_stored_bank(model) for model in (trained.onnx, rebuilt))
    assert int8_bank.shape == float_bank.shape
    assert not np.array_equal(int8_bank, float_bank)  # its own features
    rejection = read_metadata(rebuilt)["rejection"]
    assert rejection["calibrated_on_held_out"] == sum(
        1 for s in synthetic_training_set.val if s.classes)
    # the graph's margins are the ones calibrated on the int8 features, as its metadata says
    margins = next(t for t in graph.initializer if t.name == "gate.margins")
    assert onnx.numpy_helper.to_array(margins).tolist() == pytest.approx(
        [rejection["rival_margin"], rejection["negative_margin"]], abs=1e-4)
    # the held-out sight photos keep their sight through the int8 gate, as through the float one
    val = [s for s in synthetic_training_set.val if s.classes]
    photos = np.stack([s.pixels for s in val])
    _, float_scores = Detector.from_bytes(trained.onnx).raw_outputs(photos)
    _, int8_scores = Detector.from_bytes(rebuilt).raw_outputs(photos)
    passed_float = (float_scores.max(axis=1) > 0).sum(axis=1)
    passed_int8 = (int8_scores.max(axis=1) > 0).sum(axis=1)
    assert int((passed_int8 > 0).sum()) >= int((passed_float > 0).sum()) - 1


def test_a_gate_rebuilt_with_landmark_photos_holds_them_among_its_negatives(
        trained: TrainedModel, synthetic_training_set: TrainingSet) -> None:
    # the negatives may grow (the graph takes only their best similarity): a model's gate
    # can take landmark photos fetched after it was trained
    from mts_scenes import make_everyday

    photos = make_everyday(12, seed=4, size=synthetic_training_set.decode_size)
    landmarks, corrupt = decode_landmarks(
        [TrainingImage(f"landmark/{n}", partial(bytes, data), []) for n, data in
         enumerate(photos)], synthetic_training_set.decode_size)
    assert len(landmarks) == len(photos) and not corrupt
    train, val = synthetic_training_set.train, synthetic_training_set.val
    before = read_metadata(regate(trained.onnx, train, val))["rejection"]
    rebuilt = regate(trained.onnx, train, val, landmarks)
    after = read_metadata(rebuilt)["rejection"]
    assert after["landmark_negatives"] > 0 and before["landmark_negatives"] == 0
    assert after["negative_bank_size"] == before["negative_bank_size"] + after[
        "landmark_negatives"]
    stored = {t.name: list(t.dims) for t in onnx.load_from_string(rebuilt).graph.initializer}
    assert stored["gate.negatives_int8"][1] == after["negative_bank_size"]
    val_photos = np.stack([s.pixels for s in val])
    boxes, scores = Detector.from_bytes(rebuilt).raw_outputs(val_photos)
    assert boxes.shape[0] == scores.shape[0] == len(val)


def test_landmark_photos_never_cost_a_city_its_int8_model(
        trained: TrainedModel, calibration: list[np.ndarray],
        synthetic_training_set: TrainingSet) -> None:
    from mts_scenes import make_everyday

    size = synthetic_training_set.decode_size
    landmarks, _ = decode_landmarks(
        [TrainingImage(f"landmark/{n}", partial(bytes, data), []) for n, data in
         enumerate(make_everyday(12, seed=4, size=size))], size)
    with_landmarks = replace(synthetic_training_set, landmarks=landmarks)
    int8 = quantize_model(trained.onnx, calibration)
    train, val = synthetic_training_set.train, synthetic_training_set.val
    small, large = (len(regate(int8, train, val, extra)) for extra in ((), landmarks))
    assert large > small
    served = choose_served_model(
        trained.onnx, trained.metrics, calibration=calibration,
        val_images=synthetic_training_set.val_images(),
        class_names=synthetic_training_set.class_names, tolerance=1.0,
        max_bytes=(small + large) // 2, gate_set=with_landmarks)
    assert served.precision == "int8"
    assert served.record["landmarks_left_out_for_size"] is True
    assert read_metadata(served.onnx)["rejection"]["landmark_negatives"] == 0
