"""int8 models for clients: static quantisation of the exported float model, and the choice.

`quantize_model` runs onnxruntime's static quantisation in QDQ format (QuantizeLinear /
DequantizeLinear pairs around int8 weights, which onnxruntime - native and web/wasm -
fuses into QLinearConv / QLinearMatMul kernels) on Conv, MatMul and Gemm only: weights
per output channel (int8, symmetric), activations per tensor (uint8), ranges calibrated on
the city's own training photos. The first and the last of those layers (the stem on raw
pixels, the box and score outputs) and everything else (normalisation, box decoding,
sigmoid) stay float, so the client contract is unchanged: uint8 NHWC `image` in, `boxes`
and `scores` out, same metadata. In the fast variant each ReLU6 (Clip) after a quantised
Conv is folded into that Conv's output range and leaves the graph with its Q/DQ pair
(11 -> 8 ms a photo). Any graph works (extra outputs, other heads), since only the
op types are chosen.

The open-set gate (rejection.py) stays float and is rebuilt on the int8 model's own
embeddings (`regate`): a gate calibrated on the float features would refuse photos whose
int8 features moved a little.

`choose_served_model` evaluates the int8 model on the validation photos and serves it when
it is at most 4 MB and within `tolerance` of the float model; it tries the fast variant
(Conv outputs quantised too: fused QLinearConv kernels) first, then the accurate one (only
weights and Conv inputs quantised), else serves the float model. The decision and its
reason go into the metadata under "quantization".
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from sightscan.errors import TrainingError
from sightscan.inference import Detector
from sightscan.training.dataset import Sample, TrainingImage, TrainingSet
from sightscan.training.evaluation import Metrics, evaluate
from sightscan.training.export import read_metadata, replace_gate_constant, set_metadata
from sightscan.training.rejection import build_gate, gate_buffers

log = logging.getLogger(__name__)

QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]
REMOVABLE_ACTIVATIONS = ["Clip", "Relu"]
MAX_INT8_BYTES = 4_000_000
INT8_TOLERANCE = 0.01  # largest drop of the deciding measure that still serves int8
CALIBRATION_PHOTOS = 64
GATE_PREFIX = "gate."  # initializer names of the open-set gate (rejection.GateModule)
BOX_LAYER_WEIGHT = "reg_out.weight"  # model.SightNet.reg_out: the box-side bin logits
# what regate replaces (the rest is the same for the same photos per sight: mask, not_self)
REBUILT = ("bank", "negatives", "rejection_threshold", "margins")


class PhotoCalibrationReader:
    """onnxruntime CalibrationDataReader over uint8 RGB photos, one photo per batch."""

    def __init__(self, photos: Sequence[np.ndarray], input_name: str = "image") -> None:
        self._photos = list(photos)
        self._input_name = input_name
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next input feed, None when all photos were read."""
        if self._next >= len(self._photos):
            return None
        photo = self._photos[self._next]
        self._next += 1
        return {self._input_name: photo[None]}

    def rewind(self) -> None:
        """Start over (the calibrator may read the photos more than once)."""
        self._next = 0

    def __len__(self) -> int:
        return len(self._photos)


def calibration_photos(pixels: Sequence[np.ndarray], size: int,
                       limit: int = CALIBRATION_PHOTOS) -> list[np.ndarray]:
    """Up to `limit` photos, evenly spread, stretched to size x size as clients do."""
    from PIL import Image

    step = max(1, len(pixels) // limit)
    photos = []
    for array in list(pixels)[::step][:limit]:
        image = Image.fromarray(array)
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        photos.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
    return photos


def _float_ends(model: onnx.ModelProto, weighted: set[str]) -> list[str]:
    """Names of the first and last layers with weights (`weighted`: no other one before /
    after them), except the box layer.

    The stem sees raw normalised pixels and the class layer gives logits: int8 there costs
    most of the accuracy (towers: mAP@0.5 -0.08, when boxes were one regressed distance per
    side) for little size. The box layer gives each side's distance-bin logits, whose
    softmax mean absorbs the rounding: int8 there kept the float layer's mAP on the towers
    and Intramuros (docs/detector.md, eleventh round) and saves 0.22 MB.
    """
    producers = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def reaches_quantised(node: onnx.NodeProto, forward: bool) -> bool:
        seen: set[str] = set()
        stack = list(node.output if forward else node.input)
        while stack:
            tensor = stack.pop()
            nexts = consumers.get(tensor, []) if forward else [
                producers[tensor]] if tensor in producers else []
            for other in nexts:
                if other.name in seen:
                    continue
                seen.add(other.name)
                if other.name in weighted:
                    return True
                stack.extend(other.output if forward else other.input)
        return False

    return [node.name for node in model.graph.node if node.name in weighted
            and not (reaches_quantised(node, True) and reaches_quantised(node, False))
            and not any(name.endswith(BOX_LAYER_WEIGHT) for name in node.input)]


def _weight_layers(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The network's layers with weights: the quantisable nodes with a constant input,
    except the gate's."""
    constants = {t.name for t in model.graph.initializer}
    return [node for node in model.graph.node if node.op_type in QUANTIZED_OPS
            and any(name in constants for name in node.input)
            and not any(name.startswith(GATE_PREFIX) for name in node.input)]


def _float_nodes(model: onnx.ModelProto) -> list[str]:
    """Quantisable nodes that stay float: the network's ends (`_float_ends`), the gate's
    MatMuls (embedding x bank; their constants are rebuilt by `regate`) and products of two
    computed tensors (box voting: votes x boxes), which have no weights to shrink."""
    for index, node in enumerate(model.graph.node):  # names tell the quantiser what to skip
        if not node.name:
            node.name = f"sightscan_node_{index}"
    layers = {node.name for node in _weight_layers(model)}
    return _float_ends(model, layers) + [node.name for node in model.graph.node
                                         if node.op_type in QUANTIZED_OPS
                                         and node.name not in layers]


def quantize_model(float_model: bytes, photos: Sequence[np.ndarray], *,
                   quantize_outputs: bool = True) -> bytes:
    """The int8 (QDQ) version of a float ONNX model, calibrated on `photos`, metadata kept.

    With `quantize_outputs` (fast: onnxruntime fuses each DQ-Conv-Q into QLinearConv) the
    Conv outputs are quantised too; without it only weights and inputs are (more accurate,
    about as fast as float, still a quarter of the size).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not photos:
        raise TrainingError("int8 quantisation needs calibration photos; got none")
    metadata = read_metadata(float_model)

    class _Reader(PhotoCalibrationReader, CalibrationDataReader):  # type: ignore[misc]  # untyped
        pass

    reader = _Reader(photos)
    with tempfile.TemporaryDirectory(prefix="sightscan-int8-") as folder:
        output = Path(folder) / "int8.onnx"
        model = _preprocessed(float_model, Path(folder))
        options: dict[str, Any] = {"WeightSymmetric": True, "ActivationSymmetric": False}
        op_types = QUANTIZED_OPS
        if quantize_outputs:
            # ReLU6 after a quantised Conv: its range moves into the Conv's output
            # quantisation and the Clip (with its Q/DQ pair) leaves the graph
            op_types = QUANTIZED_OPS + REMOVABLE_ACTIVATIONS
        else:
            options["OpTypesToExcludeOutputQuantization"] = QUANTIZED_OPS
        try:
            quantize_static(
                model, output, reader, nodes_to_exclude=_float_nodes(model),
                quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
                per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                extra_options=options,
            )
        except (ValueError, RuntimeError, onnx.checker.ValidationError) as exc:
            raise TrainingError(f"int8 quantisation failed: {exc}") from exc
        quantized = output.read_bytes()
    return set_metadata(quantized, {**metadata, "precision": "int8"})


def _preprocessed(float_model: bytes, folder: Path) -> onnx.ModelProto:
    """Shape inference and constant folding (biases become initializers), as ORT advises."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = folder / "float.onnx", folder / "float-pre.onnx"
    source.write_bytes(float_model)
    try:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
        return onnx.load(str(target))
    except (ValueError, RuntimeError, OSError, onnx.checker.ValidationError) as exc:
        log.warning("quantisation pre-processing failed (%s); quantising the model as is", exc)
        return onnx.load_from_string(float_model)


def _embedding_output(model: onnx.ModelProto) -> str | None:
    """The tensor the gate embeds: what is L2-normalised (divided by its norm) before the
    MatMul with `gate.bank`."""
    producers = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.op_type == "MatMul" and f"{GATE_PREFIX}bank" in node.input:
            unit = next(name for name in node.input if name != f"{GATE_PREFIX}bank")
            divide = producers.get(unit)
            if divide is not None and divide.op_type == "Div":
                name: str = divide.input[0]
                return name
    return None


def regate(model_bytes: bytes, train: Sequence[Sample], val: Sequence[Sample],
           landmarks: Sequence[Sample] = ()) -> bytes:
    """The model with its gate rebuilt on its own embeddings (same photos, same rules)."""
    import onnxruntime as ort

    model = onnx.load_from_string(model_bytes)
    embedding = _embedding_output(model)
    if embedding is None:
        return model_bytes  # no gate
    model.graph.output.append(onnx.helper.make_tensor_value_info(
        embedding, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    metadata = read_metadata(model_bytes)
    size = int(metadata["input"]["shape"][1])

    def embed(pixels: Sequence[np.ndarray]) -> np.ndarray:
        photos = calibration_photos(pixels, size, limit=len(pixels))
        rows = [session.run([embedding], {"image": np.stack(photos[i:i + 32])})[0]
                for i in range(0, len(photos), 32)]
        return np.concatenate(rows) if rows else np.zeros((0, 1), np.float32)

    gate, calibration = build_gate(embed, train, val, len(metadata["class_names"]), landmarks)
    model.graph.output.pop()
    for name, value in gate_buffers(gate).items():
        if name.removeprefix(GATE_PREFIX) not in REBUILT:
            continue
        if not replace_gate_constant(model, name, value):
            log.warning("the int8 model's gate differs from the float one (%s); kept as is", name)
            return model_bytes
    metadata["rejection"] = gate.metadata(calibration)
    return set_metadata(model.SerializeToString(), metadata)


@dataclass(frozen=True, slots=True)
class ServedModel:
    """The model clients get, and why: int8 when it holds up, else float."""

    onnx: bytes
    precision: str  # "int8" or "float32"
    metrics: Metrics
    reason: str
    record: dict[str, Any]  # the "quantization" metadata entry


def _deciding_measures(images: Sequence[TrainingImage], float_metrics: Metrics
                       ) -> list[tuple[str, str]]:
    """mAP for cities with boxes, top-1 for photo-level ones, plus the clean rate if known."""
    boxed = any(lab.box is not None for im in images for lab in im.labels)
    measures = ([("mAP@0.5", "map50"), ("mAP@0.5:0.95", "map50_95")] if boxed
                else [("top-1", "top1_accuracy")])
    if float_metrics.negatives_clean_rate is not None:
        measures.append(("negatives without detection", "negatives_clean_rate"))
    return measures


def choose_served_model(float_model: bytes, float_metrics: Metrics, *,
                        calibration: Sequence[np.ndarray], val_images: Sequence[TrainingImage],
                        class_names: list[str], tolerance: float = INT8_TOLERANCE,
                        max_bytes: int = MAX_INT8_BYTES,
                        gate_set: TrainingSet | None = None) -> ServedModel:
    """Quantise, evaluate the int8 model on the validation photos, pick what clients get.

    With `gate_set` (the training set) the int8 model's gate is rebuilt on its own
    embeddings of the same photos before it is judged; without the landmark photos when
    they would take it over `max_bytes`.
    """
    record: dict[str, Any] = {"float_bytes": len(float_model), "tolerance": tolerance,
                              "float_metrics": float_metrics.as_dict()}

    def serve_float(reason: str) -> ServedModel:
        log.info("serving the float model: %s", reason)
        record.update(served="float32", reason=reason)
        return ServedModel(float_model, "float32", float_metrics, reason, record)

    size = int(read_metadata(float_model)["input"]["shape"][1])
    if not val_images:
        return serve_float("no validation photos to compare int8 and float on")
    photos = calibration_photos(calibration, size)
    reasons = []
    for quantize_outputs in (True, False):  # the fast variant first, then the accurate one
        variant = "QDQ" if quantize_outputs else "QDQ, float Conv outputs"
        try:
            int8 = quantize_model(float_model, photos, quantize_outputs=quantize_outputs)
            if gate_set is not None:
                int8 = regate(int8, gate_set.train, gate_set.val, gate_set.landmarks)
                if len(int8) > max_bytes and gate_set.landmarks:
                    # landmark photos must never cost a city its small model
                    int8 = regate(int8, gate_set.train, gate_set.val)
                    record["landmarks_left_out_for_size"] = True
        except TrainingError as exc:
            return serve_float(str(exc))
        record["int8_bytes"] = len(int8)
        if len(int8) > max_bytes:
            return serve_float(f"the int8 model has {len(int8)} bytes, over {max_bytes}")
        int8_metrics = evaluate(Detector.from_bytes(int8), list(val_images), class_names)
        record["int8_metrics"] = int8_metrics.as_dict()
        record["int8_variant"] = variant
        short = _shortfall(float_metrics, int8_metrics, val_images, tolerance)
        if short is None:
            reason = (f"int8 ({variant}) within {tolerance} of the float model "
                      "on the validation photos")
            record.update(served="int8", reason=reason)
            return ServedModel(int8, "int8", int8_metrics, reason, record)
        reasons.append(f"{variant}: {short}")
    return serve_float("; ".join(reasons))


def _shortfall(float_metrics: Metrics, int8_metrics: Metrics, val_images: Sequence[TrainingImage],
               tolerance: float) -> str | None:
    """Why the int8 model falls short of the float one, or None when it holds up."""
    for title, attr in _deciding_measures(val_images, float_metrics):
        drop = float(getattr(float_metrics, attr)) - float(getattr(int8_metrics, attr))
        if drop > tolerance:
            return (f"int8 {title} is {drop:.3f} below the float model's "
                    f"(tolerance {tolerance})")
    return None
