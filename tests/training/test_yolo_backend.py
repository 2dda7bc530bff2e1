"""The optional YOLO backend: contract wrapping (no ultralytics needed), pipeline, isolation."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from mts_synthetic import make_images, render
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from sightscan.config import load_settings
from sightscan.detections import Label
from sightscan.errors import ConfigurationError, TrainingError
from sightscan.inference import Detector
from sightscan.training import TrainConfig, TrainingImage, assemble_training_set
from sightscan.training.backends import BackendConfig, select_trainer
from sightscan.training.dataset import TrainingSet
from sightscan.training.export import base_metadata, read_metadata, set_metadata
from sightscan.training.trainer import TrainProgress
from sightscan.training.yolo import (
    check_wrapped,
    train_detector_yolo,
    wrap_yolo_onnx,
    yolo_outputs_to_contract,
)

S = 64
CELL = 16
NAMES = ["red", "green", "blue"]


def _fake_weights(class_channels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """1x1 conv weights: box offsets and sizes from the cell's colour, one class per channel."""
    nc = len(class_channels)
    weight = np.zeros((4 + nc, 3), np.float32)
    weight[:4] = [[0.5, -0.3, 0.2], [-0.2, 0.4, 0.1], [0.3, 0.0, -0.3], [0.0, 0.3, 0.3]]
    bias = np.zeros(4 + nc, np.float32)
    for c, channel in enumerate(class_channels):
        weight[4 + c] = -10.0
        weight[4 + c, channel] = 20.0
        bias[4 + c] = -8.0
    return weight, bias


def fake_yolo_onnx(image_size: int = S, class_channels: list[int] | None = None,
                   batch: int | str = "batch") -> bytes:
    """A YOLO-like export: float [B, 3, S, S] / 255 -> [B, 4 + nc, N] (cx, cy, w, h px; scores)."""
    channels = [0, 1, 2] if class_channels is None else class_channels
    nc, g = len(channels), image_size // CELL
    weight, bias = _fake_weights(channels)
    cols, rows = np.meshgrid(np.arange(g), np.arange(g))
    centres = np.stack([cols.ravel(), rows.ravel()])[None].astype(np.float32) * CELL + CELL / 2

    def c(name: str, value: Any, dtype: Any = np.float32) -> Any:
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)

    nodes = [
        helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[CELL, CELL],
                         strides=[CELL, CELL]),
        helper.make_node("Conv", ["pooled", "w", "b"], ["feat"]),
        helper.make_node("Reshape", ["feat", "flat_shape"], ["flat"]),
        helper.make_node("Slice", ["flat", "i0", "i2", "axis1"], ["off"]),
        helper.make_node("Slice", ["flat", "i2", "i4", "axis1"], ["logwh"]),
        helper.make_node("Slice", ["flat", "i4", "iend", "axis1"], ["logits"]),
        helper.make_node("Tanh", ["off"], ["toff"]),
        helper.make_node("Mul", ["toff", "eight"], ["soff"]),
        helper.make_node("Add", ["soff", "centres"], ["xy"]),
        helper.make_node("Exp", ["logwh"], ["ewh"]),
        helper.make_node("Mul", ["ewh", "size24"], ["wh"]),
        helper.make_node("Sigmoid", ["logits"], ["cls"]),
        helper.make_node("Concat", ["xy", "wh", "cls"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "fake_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                       [batch, 3, image_size, image_size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, 4 + nc, "anchors"])],
        initializer=[
            c("w", weight.reshape(4 + nc, 3, 1, 1)), c("b", bias),
            c("flat_shape", [0, 4 + nc, -1], np.int64), c("i0", [0], np.int64),
            c("i2", [2], np.int64), c("i4", [4], np.int64), c("iend", [4 + nc], np.int64),
            c("axis1", [1], np.int64), c("eight", 8.0), c("size24", 24.0), c("centres", centres),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="author", value="not ultralytics")
    onnx.checker.check_model(model, full_check=True)
    serialized: bytes = model.SerializeToString()
    return serialized


def fake_yolo_reference(image: np.ndarray, class_channels: list[int] | None = None) -> np.ndarray:
    """Numpy twin of `fake_yolo_onnx` on uint8 NHWC photos: [B, 4 + nc, N]."""
    channels = [0, 1, 2] if class_channels is None else class_channels
    b, size = image.shape[0], image.shape[1]
    g = size // CELL
    pixels = image.astype(np.float32) / 255.0
    pooled = pixels.reshape(b, g, CELL, g, CELL, 3).mean(axis=(2, 4)).reshape(b, g * g, 3)
    weight, bias = _fake_weights(channels)
    feat = pooled @ weight.T + bias  # [B, N, 4 + nc]
    cols, rows = np.meshgrid(np.arange(g), np.arange(g))
    centres = np.stack([cols.ravel(), rows.ravel()], -1) * CELL + CELL / 2
    xy = centres + 8.0 * np.tanh(feat[..., :2])
    wh = 24.0 * np.exp(feat[..., 2:4])
    scores = 1.0 / (1.0 + np.exp(-feat[..., 4:]))
    return np.concatenate([xy, wh, scores], -1).transpose(0, 2, 1).astype(np.float32)


def _session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _photo() -> np.ndarray:
    """Grey 64 x 64 photo with a red block in cell (row 1, col 2) and a blue one in (3, 0)."""
    image = np.full((S, S, 3), 128, np.uint8)
    image[16:32, 32:48] = (255, 0, 0)
    image[48:64, 0:16] = (0, 0, 255)
    return image


# ------------------------------------------------------------------ wrapping, no ultralytics

def test_the_wrapped_model_takes_uint8_nhwc_and_returns_contract_boxes_and_scores() -> None:
    wrapped = wrap_yolo_onnx(fake_yolo_onnx(), S, 3)
    model = onnx.load_from_string(wrapped)
    onnx.checker.check_model(model, full_check=True)
    session = _session(wrapped)
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert session.get_inputs()[0].shape[1:] == [S, S, 3]
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores"]
    rng = np.random.default_rng(1)
    batch = np.concatenate([_photo()[None], rng.integers(0, 256, (2, S, S, 3), np.uint8)])
    boxes, scores = session.run(None, {"image": batch})
    raw = fake_yolo_reference(batch)
    rows = raw.transpose(0, 2, 1)
    expected = np.concatenate([rows[..., :2] - rows[..., 2:4] / 2,
                               rows[..., :2] + rows[..., 2:4] / 2], -1) / S
    assert boxes.shape == (3, (S // CELL) ** 2, 4) and scores.shape == (3, (S // CELL) ** 2, 3)
    np.testing.assert_allclose(boxes, np.clip(expected, 0, 1), atol=1e-5)
    np.testing.assert_allclose(scores, rows[..., 4:], atol=1e-5)
    # the numpy twin of the wrapper's output step agrees too
    ref_boxes, ref_scores = yolo_outputs_to_contract(raw, S)
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert check_wrapped(fake_yolo_onnx(), wrapped, S) <= 1e-4
    assert {p.key for p in model.metadata_props} == {"author"}  # the export's own props stay


def test_the_detector_loads_the_wrapped_model_and_finds_the_expected_sights() -> None:
    metadata = base_metadata(NAMES, S)
    metadata.update(backbone="ultralytics YOLO", score_threshold=0.5)
    detector = Detector.from_bytes(set_metadata(wrap_yolo_onnx(fake_yolo_onnx(), S, 3), metadata))
    assert detector.class_names == NAMES and detector.input_size == S
    photo = _photo()
    found = {d.label: d for d in detector.detect(Image.fromarray(photo))}
    assert set(found) == {"red", "blue"}
    raw = fake_yolo_reference(photo[None])
    boxes, scores = yolo_outputs_to_contract(raw, S)
    for name, cell, cls in (("red", 1 * 4 + 2, 0), ("blue", 3 * 4 + 0, 2)):
        assert found[name].score == pytest.approx(float(scores[0, cell, cls]), abs=1e-5)
        assert found[name].box.as_list() == pytest.approx(boxes[0, cell].tolist(), abs=1e-5)
    assert detector.detect(Image.fromarray(np.full((S, S, 3), 128, np.uint8))) == []
    # a PNG photo of another size is stretched (not letterboxed) like any SightScan model
    out = io.BytesIO()
    Image.fromarray(photo).resize((2 * S, 2 * S), Image.Resampling.NEAREST).save(out, "PNG")
    assert {d.label for d in detector.detect(out.getvalue())} == {"red", "blue"}


@pytest.mark.parametrize(("model", "classes", "message"), [
    (lambda: fake_yolo_onnx(batch=1), 3, "dynamic batch"),
    (lambda: fake_yolo_onnx(), 4, r"4 \+ 4, N\].*got \['batch', 7"),
    (lambda: fake_yolo_onnx(image_size=96), 3, "64 x 64"),
])
def test_exports_that_cannot_meet_the_contract_are_refused(model: Callable[[], bytes], classes: int,
                                                            message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        wrap_yolo_onnx(model(), S, classes)


# ------------------------------------------------------------------ pipeline, stand-in ultralytics

class _FakeTrainer:
    loss_names = ("box_loss", "cls_loss", "dfl_loss")
    tloss: np.ndarray | None

    def __init__(self, epochs: int, batches: int) -> None:
        self.epoch, self.epochs, self.tloss = 0, epochs, None
        self.train_loader = list(range(batches))


class FakeYOLO:
    """Stand-in for ultralytics.YOLO: checks the dataset, runs callbacks, exports a fake graph."""

    calls: list[tuple[str, dict[str, Any]]] = []
    class_channels: list[int] = [0, 1, 2]

    def __init__(self, source: str) -> None:
        self.calls.append(("init", {"source": source}))
        self.callbacks: dict[str, list[Any]] = {}
        self.project: Path | None = None

    def add_callback(self, event: str, function: Any) -> None:
        self.callbacks.setdefault(event, []).append(function)

    def train(self, **kwargs: Any) -> None:
        self.calls.append(("train", kwargs))
        data = yaml.safe_load(Path(kwargs["data"]).read_text())
        root = Path(data["path"])
        for split in ("train", "val"):
            for photo in sorted((root / data[split]).glob("*.jpg")):
                with Image.open(photo) as image:
                    assert image.size == (kwargs["imgsz"], kwargs["imgsz"])
                label = root / "labels" / split / photo.with_suffix(".txt").name
                for line in label.read_text().splitlines():
                    cls, *box = line.split()
                    assert int(cls) in data["names"] and all(0 <= float(v) <= 1 for v in box)
        self.calls.append(("data", data))
        self.project = Path(kwargs["project"])
        trainer = _FakeTrainer(kwargs["epochs"], batches=2)
        for epoch in range(kwargs["epochs"]):
            trainer.epoch = epoch
            for f in self.callbacks.get("on_train_epoch_start", []):
                f(trainer)
            for step in range(len(trainer.train_loader)):
                trainer.tloss = np.array([1.0, 2.0, 0.5]) / (1 + epoch + step)
                for f in self.callbacks.get("on_train_batch_end", []):
                    f(trainer)
            for f in self.callbacks.get("on_train_epoch_end", []):
                f(trainer)

    def export(self, **kwargs: Any) -> str:
        self.calls.append(("export", kwargs))
        assert self.project is not None
        path = self.project / "best.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(fake_yolo_onnx(kwargs["imgsz"], self.class_channels))
        return str(path)


@pytest.fixture
def fake_ultralytics(monkeypatch: pytest.MonkeyPatch) -> type[FakeYOLO]:
    FakeYOLO.calls = []
    module = types.ModuleType("ultralytics")
    module.YOLO = FakeYOLO  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ultralytics", module)
    return FakeYOLO


def _small_set() -> TrainingSet:
    images = make_images(6, 4, seed=5, size=S)
    data, _ = render("red disc", np.random.default_rng(9), S)
    images.append(TrainingImage("level-only", lambda: data, [Label("red disc", None)]))
    training_set: TrainingSet = assemble_training_set(images, city=None, min_images_per_label=2,
                                                      decode_size=S)
    return training_set


def test_train_detector_yolo_writes_yolo_data_trains_wraps_and_evaluates(
        fake_ultralytics: type[FakeYOLO]) -> None:
    training_set = _small_set()
    # sorted classes: blue square, green triangle, red disc -> B, G, R channels
    fake_ultralytics.class_channels = [2, 1, 0]
    config = TrainConfig(epochs=2, image_size=S, batch_size=4, threads=1, seed=3)
    events: list[TrainProgress] = []
    trained = train_detector_yolo(training_set, config, events.append, city="Testville")
    calls = dict(fake_ultralytics.calls)
    assert calls["init"] == {"source": "yolo11n.pt"}
    train = calls["train"]
    assert (train["imgsz"], train["epochs"], train["batch"], train["seed"]) == (S, 2, 4, 3)
    assert train["rect"] is False and train["device"] == "cpu" and train["exist_ok"] is True
    assert calls["export"]["format"] == "onnx" and calls["export"]["dynamic"] is True
    assert calls["data"]["names"] == dict(enumerate(training_set.class_names))
    assert not Path(train["project"]).exists()  # the temporary folder is gone
    assert len(events) == 4 and events[-1].epoch == 2 and events[-1].step == 2
    assert [h["epoch"] for h in trained.history] == [1.0, 2.0]
    # the epoch's loss is the trainer's running mean at its end (here: the stand-in's last value)
    assert trained.history[0] == pytest.approx(
        {"epoch": 1.0, "loss": 1.75, "box": 0.5, "cls": 1.0, "dfl": 0.25})
    # the file is a SightScan model: contract, metadata, calibrated threshold, metrics
    assert read_metadata(trained.onnx) == trained.metadata
    detector = Detector.from_bytes(trained.onnx)
    meta = detector.metadata
    assert meta["backbone"] == "ultralytics YOLO" and "AGPL-3.0" in meta["backbone_license"]
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["layout"] == "NHWC"
    assert meta["class_names"] == training_set.class_names and meta["city"] == "Testville"
    assert meta["train_config"]["trainer"] == "yolo" and meta["metrics_split"] == "val"
    assert 0.05 <= meta["score_threshold"] <= 0.95
    assert meta["metrics"]["images"] == len(training_set.val)
    level = [s for s in training_set.train + training_set.val if s.image_classes]
    assert level and meta["training"]["yolo"]["skipped_image_level"] == len(level)
    assert trained.report_png.startswith(b"\x89PNG")
    # the colour-keyed stand-in finds the shapes: evaluation really ran through the Detector
    assert trained.metrics.top1_accuracy > 0.5


def test_missing_ultralytics_is_a_configuration_error_with_the_install_hint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ultralytics", None)  # import fails, as when not installed
    config = TrainConfig(epochs=1, image_size=S, threads=1)
    with pytest.raises(ConfigurationError, match=r"pip install 'sightscan\[yolo\]'"):
        train_detector_yolo(_small_set(), config)
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_TRAINER"):
        select_trainer(BackendConfig("yolo"))


def test_select_trainer_knows_the_backends(fake_ultralytics: type[FakeYOLO]) -> None:
    assert callable(select_trainer(BackendConfig("efficientnet")))
    yolo = select_trainer(BackendConfig.from_settings(
        load_settings(sightscan_trainer=" YOLO ", sightscan_yolo_weights="yolo11s.pt")))
    assert yolo.keywords == {"weights": "yolo11s.pt"}  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_TRAINER: expected one of"):
        BackendConfig("resnet")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_TRAINER.*'efficientnet' or 'yolo'"):
        load_settings(sightscan_trainer="resnet")


# ------------------------------------------------------------------ isolation

def test_the_default_backend_never_imports_ultralytics(tmp_path: Path) -> None:
    stand_in = tmp_path / "ultralytics"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text("\"\"\"Stand-in: importing it leaves a trace.\"\"\"\n")
    script = textwrap.dedent("""
        import importlib.util, sys
        import sightscan.training, sightscan.training.backends, sightscan.training.yolo
        from mts_synthetic import make_images
        from sightscan.training import TrainConfig, assemble_training_set
        from sightscan.training.backends import BackendConfig, select_trainer

        assert importlib.util.find_spec("ultralytics") is not None  # importable: not vacuous
        train = select_trainer(BackendConfig("efficientnet"))
        images = make_images(3, 2, seed=1, size=64)
        training_set = assemble_training_set(images, city=None, min_images_per_label=2,
                                             decode_size=64)
        train(training_set, TrainConfig(epochs=1, image_size=64, batch_size=8, threads=1,
                                         pretrained=False))
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "ultralytics")
        assert not loaded, loaded
        print("clean")
    """)
    here = Path(__file__).parent
    path = [str(tmp_path), str(here), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("clean")


# ------------------------------------------------------------------ the real thing (extra `yolo`)

@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # ultralytics' own deprecation and user warnings
def test_real_ultralytics_training_yields_a_sightscan_model() -> None:
    pytest.importorskip("ultralytics")
    training_set = assemble_training_set(make_images(12, 8, seed=0, size=S), city=None,
                                         min_images_per_label=5, decode_size=S)
    config = TrainConfig(epochs=3, image_size=S, batch_size=8, threads=2, seed=0)
    trained = train_detector_yolo(training_set, config)
    detector = Detector.from_bytes(trained.onnx)
    assert detector.metadata["backbone"] == "ultralytics YOLO"
    assert detector.class_names == training_set.class_names
    assert len(trained.history) == 3
    assert trained.metrics.images == len(training_set.val)
