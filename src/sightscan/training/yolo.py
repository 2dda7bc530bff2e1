"""Optional YOLO backend: train with ultralytics (extra `yolo`), export one contract-true ONNX file.

ultralytics (AGPL-3.0) is imported only inside `train_detector_yolo`, never by the default
backend. Its ONNX export (input `images` float32 RGB NCHW / 255; output `[B, 4 + nc, N]`:
cx, cy, w, h in input pixels, then per-class sigmoid scores) is wrapped so that the file
satisfies SightScan's client contract exactly (docs/detector.md): input `image` uint8 RGB
NHWC `[batch, S, S, 3]` (the photo stretched to S x S), outputs `boxes` `[batch, N, 4]`
relative x1, y1, x2, y2 and `scores` `[batch, N, classes]`, metadata under "sightscan".

Training data are written as a temporary YOLO-format folder of S x S photos (already
stretched, exactly as the client stretches), so ultralytics' own letterbox is a no-op.
Photos carrying an image-level label (a sight without a box) are skipped: YOLO has no
multiple-instance loss, a whole-photo box would teach wrong boxes and leaving the sight
out would teach it as background. See docs/yolo.md.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sightscan.errors import ConfigurationError, TrainingError
from sightscan.progress import show_progress

if TYPE_CHECKING:
    from sightscan.training.dataset import TrainingSet
    from sightscan.training.trainer import ProgressCallback, TrainConfig, TrainedModel

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "yolo11n.pt"
BACKBONE = "ultralytics YOLO"
BACKBONE_LICENSE = ("AGPL-3.0 (ultralytics); weights trained with it are subject to "
                    "the AGPL-3.0 or an Ultralytics Enterprise licence")
INSTALL_HINT = "pip install 'sightscan[yolo]'"
EXPORT_OPSET = 17
WRAP_TOLERANCE = 1e-4
_PREFIX = "yolo/"  # names of the ultralytics graph inside the wrapped one
_OWN = "sightscan/"  # names of the nodes the wrapper adds


# --------------------------------------------------------------------------- ONNX wrapping

def _dims(value_info: Any) -> list[int | str]:
    """The shape of an ONNX ValueInfo: ints for fixed dims, names (or "?") for symbolic ones."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def _check_yolo_graph(model: Any, image_size: int, num_classes: int) -> tuple[str, str]:
    """Validate an ultralytics detection export; return its input and output names."""
    from onnx import TensorProto

    graph = model.graph
    initialisers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise TrainingError("expected a YOLO detection graph with one input and one output, got "
                            f"{len(inputs)} inputs and {len(graph.output)} outputs")
    source, target = inputs[0], graph.output[0]
    if source.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise TrainingError("expected a float32 YOLO input (export with half=False)")
    shape = _dims(source)
    if len(shape) != 4 or shape[1] != 3:
        raise TrainingError(f"expected a YOLO input [batch, 3, S, S], got {shape}")
    if isinstance(shape[0], int):
        raise TrainingError("expected a dynamic batch in the YOLO input (export with "
                            f"dynamic=True): clients run batches, got {shape}")
    if any(isinstance(d, int) and d != image_size for d in shape[2:]):
        raise TrainingError(f"expected a YOLO input of {image_size} x {image_size}, got {shape}")
    out = _dims(target)
    if len(out) != 3 or (isinstance(out[1], int) and out[1] != 4 + num_classes):
        raise TrainingError(
            f"expected a YOLO output [batch, 4 + {num_classes}, N] (cx, cy, w, h, class scores; "
            f"no NMS, not an end-to-end model), got {out}")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise TrainingError(f"expected an ONNX opset >= 13 in the YOLO export, got {opset}")
    return source.name, target.name


def wrap_yolo_onnx(model_bytes: bytes, image_size: int, num_classes: int) -> bytes:
    """Wrap an ultralytics detection export in SightScan's uint8 NHWC -> boxes/scores contract."""
    import onnx
    from onnx import TensorProto, compose, helper, numpy_helper

    inner = onnx.load_from_string(model_bytes)
    in_name, out_name = _check_yolo_graph(inner, image_size, num_classes)
    inner = compose.add_prefix(inner, _PREFIX)
    in_name, out_name = _PREFIX + in_name, _PREFIX + out_name
    s = image_size

    def const(name: str, value: Any, dtype: Any) -> Any:
        return numpy_helper.from_array(np.asarray(value, dtype=dtype), _OWN + name)

    def model(graph: Any) -> Any:
        made = helper.make_model(graph, opset_imports=list(inner.opset_import))
        made.ir_version = inner.ir_version
        return made

    # uint8 RGB NHWC [batch, S, S, 3] -> float32 RGB NCHW in 0..1, as ultralytics feeds it
    pre = helper.make_graph(
        [helper.make_node("Cast", ["image"], [_OWN + "float"], to=TensorProto.FLOAT),
         helper.make_node("Transpose", [_OWN + "float"], [_OWN + "nchw"], perm=[0, 3, 1, 2]),
         helper.make_node("Div", [_OWN + "nchw", _OWN + "255"], [_OWN + "pixels"])],
        "sightscan_preprocess",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", s, s, 3])],
        [helper.make_tensor_value_info(_OWN + "pixels", TensorProto.FLOAT, ["batch", 3, s, s])],
        initializer=[const("255", 255.0, np.float32)],
    )
    # [batch, 4 + nc, N] (cx, cy, w, h in input pixels; scores) -> relative x1y1x2y2 + scores
    anchors = _dims(next(o for o in inner.graph.output if o.name == out_name))[2]
    n: int | str = anchors if isinstance(anchors, int) else "anchors"

    def part(name: str, output: str) -> Any:
        return helper.make_node("Slice", [_OWN + "rows", _OWN + f"{name}_start",
                                          _OWN + f"{name}_end", _OWN + "axis2"], [output])

    post = helper.make_graph(
        [helper.make_node("Transpose", [_OWN + "raw"], [_OWN + "rows"], perm=[0, 2, 1]),
         part("xy", _OWN + "xy"), part("wh", _OWN + "wh"), part("cls", "scores"),
         helper.make_node("Mul", [_OWN + "wh", _OWN + "half"], [_OWN + "half_wh"]),
         helper.make_node("Sub", [_OWN + "xy", _OWN + "half_wh"], [_OWN + "x1y1"]),
         helper.make_node("Add", [_OWN + "xy", _OWN + "half_wh"], [_OWN + "x2y2"]),
         helper.make_node("Concat", [_OWN + "x1y1", _OWN + "x2y2"], [_OWN + "corners"], axis=2),
         helper.make_node("Div", [_OWN + "corners", _OWN + "size"], [_OWN + "relative"]),
         helper.make_node("Clip", [_OWN + "relative", _OWN + "zero", _OWN + "one"], ["boxes"])],
        "sightscan_postprocess",
        [helper.make_tensor_value_info(_OWN + "raw", TensorProto.FLOAT,
                                       ["batch", 4 + num_classes, n])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", n, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n, num_classes])],
        initializer=[
            const("xy_start", [0], np.int64), const("xy_end", [2], np.int64),
            const("wh_start", [2], np.int64), const("wh_end", [4], np.int64),
            const("cls_start", [4], np.int64), const("cls_end", [4 + num_classes], np.int64),
            const("axis2", [2], np.int64), const("half", 0.5, np.float32),
            const("size", float(s), np.float32), const("zero", 0.0, np.float32),
            const("one", 1.0, np.float32),
        ],
    )
    try:
        merged = compose.merge_models(model(pre), inner, [(_OWN + "pixels", in_name)])
        merged = compose.merge_models(merged, model(post), [(out_name, _OWN + "raw")])
        merged.graph.name = "sightscan_yolo_detector"
        onnx.checker.check_model(merged, full_check=True)
    except (ValueError, onnx.checker.ValidationError,
            onnx.shape_inference.InferenceError) as exc:
        raise TrainingError(f"cannot wrap the YOLO export in the client contract: {exc}") from exc
    wrapped: bytes = merged.SerializeToString()
    return wrapped


def yolo_outputs_to_contract(raw: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Numpy reference of the wrapper's output step: [B, 4+nc, N] -> (boxes, scores)."""
    rows = np.transpose(raw, (0, 2, 1)).astype(np.float32)
    xy, wh = rows[..., :2], rows[..., 2:4]
    half = wh * np.float32(0.5)
    corners = np.concatenate([xy - half, xy + half], axis=-1) / np.float32(image_size)
    return np.clip(corners, 0.0, 1.0), rows[..., 4:]


def check_wrapped(raw_model: bytes, wrapped_model: bytes, image_size: int) -> float:
    """Run both graphs on the same random photos; TrainingError when they disagree."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    raw = ort.InferenceSession(raw_model, options, providers=providers)
    wrapped = ort.InferenceSession(wrapped_model, options, providers=providers)
    image = np.random.default_rng(0).integers(0, 256, (2, image_size, image_size, 3), np.uint8)
    pixels = image.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
    expected = yolo_outputs_to_contract(
        raw.run(None, {raw.get_inputs()[0].name: pixels})[0], image_size)
    got = wrapped.run(["boxes", "scores"], {"image": image})
    diff = max(float(np.abs(e - g).max()) for e, g in zip(expected, got, strict=True))
    if diff > WRAP_TOLERANCE:
        raise TrainingError(f"the wrapped YOLO model disagrees with the export by {diff:.2e}")
    return diff


# --------------------------------------------------------------------------- training data

def write_yolo_dataset(training_set: TrainingSet, root: Path, image_size: int
                       ) -> tuple[Path, dict[str, int]]:
    """Write the set as a YOLO-format folder (S x S JPEG photos, txt labels); data.yaml path."""
    import yaml
    from PIL import Image

    counts = {"written_train": 0, "written_val": 0, "skipped_image_level": 0}
    splits = {"train": training_set.train, "val": training_set.val}
    for split, samples in splits.items():
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for k, sample in enumerate(samples):
            if sample.image_classes:  # no box to learn from; see the module docstring
                counts["skipped_image_level"] += 1
                continue
            lines = []
            for cls, box in sample.boxes:
                cx, cy, w, h = box.as_yolo()
                if w > 0 and h > 0:
                    lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
            photo = Image.fromarray(sample.pixels)
            if photo.size != (image_size, image_size):  # the client's stretch, done once here
                photo = photo.resize((image_size, image_size), Image.Resampling.BILINEAR)
            photo.save(images / f"{k:06d}.jpg", format="JPEG", quality=95)
            (labels / f"{k:06d}.txt").write_text("".join(f"{line}\n" for line in lines))
            counts[f"written_{split}"] += 1
    if not counts["written_train"]:
        raise TrainingError("no training photo with boxes: the YOLO backend needs boxed sights")
    data = {
        "path": str(root.resolve()),
        "train": "images/train",
        # ultralytics needs a validation folder; without held-out photos, reuse the training ones
        "val": "images/val" if counts["written_val"] else "images/train",
        "names": dict(enumerate(training_set.class_names)),
    }
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return data_yaml, counts


# --------------------------------------------------------------------------- training

def _import_yolo() -> Any:
    """ultralytics' YOLO class, or ConfigurationError with the install hint."""
    try:
        from ultralytics import YOLO
    except ImportError as exc:
        raise ConfigurationError(
            f"the yolo trainer (SIGHTSCAN_TRAINER=yolo) needs ultralytics: {INSTALL_HINT}"
        ) from exc
    return YOLO


def _device(requested: str) -> int | str:
    """ultralytics' device argument: GPU 0 when CUDA is asked for and present, else the CPU."""
    if requested == "cuda":
        import torch

        if torch.cuda.is_available():
            return 0
        logger.warning("CUDA was requested but is not available; training YOLO on the CPU")
    return "cpu"


def train_arguments(config: TrainConfig, data_yaml: Path, project: Path) -> dict[str, Any]:
    """Keyword arguments of ultralytics' `YOLO.train` for a TrainConfig."""
    args: dict[str, Any] = {
        "data": str(data_yaml), "epochs": config.epochs, "imgsz": config.image_size,
        "batch": config.batch_size, "device": _device(config.device), "seed": config.seed,
        "deterministic": True, "workers": min(config.threads, 8), "project": str(project),
        "name": "train", "exist_ok": True, "rect": False, "val": False, "plots": False,
        "verbose": False,
    }
    if not config.augment:
        args.update(mosaic=0.0, fliplr=0.0, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, translate=0.0,
                    scale=0.0)
    return args


def _loss_items(trainer: Any) -> dict[str, float]:
    """The trainer's running mean losses as {"box": .., "cls": .., "dfl": ..}."""
    losses = trainer.tloss  # a tensor (ultralytics 8.3) or a dict (later releases)
    if losses is None:
        return {}
    if isinstance(losses, dict):
        items = {str(k): float(v) for k, v in losses.items()}
    else:
        items = {str(k): float(v) for k, v in zip(trainer.loss_names, losses, strict=False)}
    return {k.split("/", 1)[-1].removesuffix("_loss"): v for k, v in items.items()}


def _attach_callbacks(model: Any, progress: ProgressCallback | None,
                      history: list[dict[str, float]]) -> None:
    """Per-batch TrainProgress events and the per-epoch loss history from ultralytics callbacks."""
    from sightscan.training.trainer import TrainProgress

    counts = {"step": 0, "done": 0}
    started = [0.0]

    def epoch_start(trainer: Any) -> None:
        counts["step"] = 0
        if not started[0]:
            started[0] = time.monotonic()

    def batch_end(trainer: Any) -> None:
        counts["step"] += 1
        counts["done"] += 1
        if progress is None:
            return
        steps = max(1, len(trainer.train_loader))
        elapsed = time.monotonic() - started[0]
        remaining = trainer.epochs * steps - (trainer.epoch * steps + counts["step"])
        loss = sum(_loss_items(trainer).values())
        progress(TrainProgress(trainer.epoch + 1, trainer.epochs, counts["step"], steps, loss,
                               elapsed, elapsed / counts["done"] * max(0, remaining)))

    def epoch_end(trainer: Any) -> None:
        items = _loss_items(trainer)
        history.append({"epoch": float(trainer.epoch + 1), "loss": sum(items.values()), **items})
        logger.info("YOLO epoch %d/%d loss %.4f", trainer.epoch + 1, trainer.epochs,
                    history[-1]["loss"])

    model.add_callback("on_train_epoch_start", epoch_start)
    model.add_callback("on_train_batch_end", batch_end)
    model.add_callback("on_train_epoch_end", epoch_end)


def train_detector_yolo(training_set: TrainingSet, config: TrainConfig,
                        progress: ProgressCallback | None = None, *, city: str | None = None,
                        weights: str = DEFAULT_WEIGHTS) -> TrainedModel:
    """Train with ultralytics, export, wrap in the client contract, calibrate and evaluate."""
    from sightscan.training.trainer import console_progress

    if progress is None and show_progress():
        with console_progress("training (YOLO)") as bar:
            return train_detector_yolo(training_set, config, bar, city=city, weights=weights)
    if not training_set.train:
        raise TrainingError("the training split is empty")
    yolo_class = _import_yolo()
    if config.checkpoint_path is not None:
        logger.warning("the YOLO backend keeps no checkpoint; a restarted run starts over")
    source = weights if config.pretrained else f"{Path(weights).stem}.yaml"
    history: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="sightscan-yolo-") as tmp:
        root = Path(tmp)
        data_yaml, written = write_yolo_dataset(training_set, root / "data", config.image_size)
        model = yolo_class(source)
        _attach_callbacks(model, progress, history)
        try:
            model.train(**train_arguments(config, data_yaml, root / "runs"))
            exported = model.export(format="onnx", imgsz=config.image_size, dynamic=True,
                                    simplify=False, opset=EXPORT_OPSET, half=False, nms=False,
                                    device="cpu")
            raw = Path(str(exported)).read_bytes()
        except (RuntimeError, OSError, ValueError, AssertionError) as exc:
            raise TrainingError(f"ultralytics training or export failed: {exc}") from exc
    return _finish(raw, history, training_set, config, city, weights, written)


def _finish(raw: bytes, history: list[dict[str, float]], training_set: TrainingSet,
            config: TrainConfig, city: str | None, weights: str, written: dict[str, int]
            ) -> TrainedModel:
    """Wrap, embed the metadata, calibrate the threshold and evaluate through Detector."""
    from sightscan.training.export import MAX_MODEL_BYTES, base_metadata, set_metadata
    from sightscan.training.trainer import finish_model

    size = config.image_size
    wrapped = wrap_yolo_onnx(raw, size, len(training_set.class_names))
    check_wrapped(raw, wrapped, size)
    if len(wrapped) > MAX_MODEL_BYTES:
        logger.warning("the YOLO model is %d bytes, over the %d of the default detector",
                       len(wrapped), MAX_MODEL_BYTES)
    metadata = base_metadata(training_set.class_names, size)
    metadata.update({
        "city": city,
        "backbone": BACKBONE,
        "backbone_license": BACKBONE_LICENSE,
        "weights": weights,
        "outputs": {"boxes": "[batch, N, 4] relative x1, y1, x2, y2",
                    "scores": "[batch, N, classes] sigmoid class scores (ultralytics YOLO)"},
    })
    return finish_model(set_metadata(wrapped, metadata), metadata, training_set, config, history,
                        title=f"SightScan YOLO detector {city or ''}", default_threshold=0.25,
                        training_extra={"yolo": written},
                        config_extra={"trainer": "yolo", "weights": weights})
