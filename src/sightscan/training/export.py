"""ONNX export: the whole client graph in one file, metadata embedded, checked before use.

The graph takes `image`: uint8 RGB, NHWC [batch, S, S, 3] (the photo stretched to S x S,
no letterbox); normalisation, box decoding and sigmoid scores are inside. Outputs are
`boxes` [batch, N, 4] (relative x1, y1, x2, y2, clipped) and `scores` [batch, N, C]; the
client (sightscan.inference) keeps scores above the threshold and runs NMS in numpy.
The JSON metadata lives in the model's metadata_props under the key "sightscan".
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import numpy as np
import onnx
import torch

from sightscan.errors import TrainingError
from sightscan.training.model import (
    BACKBONE,
    BACKBONE_LICENSE,
    VOTE_FRAGILE,
    ExportWrapper,
    SightNet,
    fragile_votes,
)
from sightscan.training.rejection import DISABLED, NO_RIVAL_RULE, GateModule, int8_columns

METADATA_KEY = "sightscan"
MODEL_FORMAT = "sightscan-detector"
FORMAT_VERSION = 1
OPSET = 17
MAX_MODEL_BYTES = 20_000_000
PARITY_TOLERANCE = 2e-3
REJECTION_INITIALIZER = "gate.rejection_threshold"  # the buffer's name in the ONNX graph
MARGINS_INITIALIZER = "gate.margins"  # [the rival margin (other sights), the negatives']
LEGACY_MARGIN_INITIALIZER = "gate.rival_margin"  # models before the negatives had their own
INT8_STORED = ("gate.bank", "gate.negatives")  # the gate's embedding banks ([D, M] each)
INT8_SUFFIX, SCALE_SUFFIX, ZERO_SUFFIX = "_int8", "_scale", "_zero"


def input_spec(image_size: int) -> dict[str, Any]:
    """The documented model input, as stored in the metadata."""
    return {
        "name": "image",
        "shape": ["batch", image_size, image_size, 3],
        "dtype": "uint8",
        "layout": "NHWC",
        "color": "RGB",
        "resize": f"stretch the whole photo to {image_size}x{image_size} "
                  "(no letterbox, no crop), bilinear, after EXIF orientation",
        "normalisation": "inside the graph",
    }


def base_metadata(class_names: list[str], image_size: int) -> dict[str, Any]:
    """Metadata fields fixed by the architecture; the trainer adds threshold, metrics, counts."""
    return {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "version": None,
        "class_names": list(class_names),
        "input": input_spec(image_size),
        "outputs": {
            "boxes": "[batch, N, 4] relative x1, y1, x2, y2",
            "scores": "[batch, N, classes] sigmoid, IoU-aware",
        },
        "score_threshold": 0.5,
        "nms_iou": 0.5,
        "max_detections": 20,
        "backbone": BACKBONE,
        "backbone_license": BACKBONE_LICENSE,
    }


def set_metadata(model_bytes: bytes, metadata: dict[str, Any]) -> bytes:
    """Return the ONNX bytes with `metadata` stored (JSON) under metadata_props["sightscan"]."""
    model = onnx.load_from_string(model_bytes)
    props = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(metadata, sort_keys=True)
    serialized: bytes = model.SerializeToString()
    return serialized


def read_metadata(model_bytes: bytes) -> dict[str, Any]:
    """The SightScan metadata of ONNX bytes (training side; clients use sightscan.inference)."""
    model = onnx.load_from_string(model_bytes)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            value: dict[str, Any] = json.loads(prop.value)
            return value
    raise TrainingError("the ONNX model has no SightScan metadata")


def set_rejection_threshold(model_bytes: bytes, thresholds: float | list[float], *,
                            rival_margin: float | None = None,
                            negative_margin: float | None = None) -> bytes:
    """The model with its open-set gate moved (one value or one per sight; -2 lets all through).

    An operator can trade clean everyday photos against kept sight photos without retraining;
    the metadata's `rejection` follows. `rival_margin` moves the rule on other sights (one
    closer by more than the margin refuses; a larger margin keeps more), `negative_margin`
    the same rule on the negative photos; thresholds of -2 with no margin given open both
    rules as well.
    """
    model = onnx.load_from_string(model_bytes)
    initializers = {t.name: t for t in model.graph.initializer}
    if REJECTION_INITIALIZER not in initializers:
        raise TrainingError("the model has no open-set gate (trained before it existed?)")
    found = initializers[REJECTION_INITIALIZER]
    current = onnx.numpy_helper.to_array(found)
    values = np.broadcast_to(np.asarray(thresholds, np.float32), current.shape).copy()
    found.CopyFrom(onnx.numpy_helper.from_array(values, REJECTION_INITIALIZER))
    if bool(np.all(values <= DISABLED)):
        rival_margin = NO_RIVAL_RULE if rival_margin is None else rival_margin
        negative_margin = NO_RIVAL_RULE if negative_margin is None else negative_margin
    moved = {key: value for key, value in (("rival_margin", rival_margin),
                                           ("negative_margin", negative_margin))
             if value is not None}
    margins = initializers.get(MARGINS_INITIALIZER)
    if margins is not None:
        both = onnx.numpy_helper.to_array(margins).copy()
        for index, key in enumerate(("rival_margin", "negative_margin")):
            both[index] = moved.get(key, both[index])
        margins.CopyFrom(onnx.numpy_helper.from_array(both, MARGINS_INITIALIZER))
    elif LEGACY_MARGIN_INITIALIZER in initializers and rival_margin is not None:
        # one margin for every rival, sights and negatives alike
        moved = {"rival_margin": rival_margin}
        initializers[LEGACY_MARGIN_INITIALIZER].CopyFrom(onnx.numpy_helper.from_array(
            np.array([rival_margin], np.float32), LEGACY_MARGIN_INITIALIZER))
    else:
        moved = {}
    updated = model.SerializeToString()
    metadata = read_metadata(updated)
    rejection = metadata.setdefault("rejection", {})
    rejection["thresholds"] = [round(float(v), 4) for v in values]
    rejection.update({key: round(float(value), 4) for key, value in moved.items()})
    return set_metadata(updated, metadata)


def export_onnx(net: SightNet, metadata: dict[str, Any], *, check_parity: bool = True,
                gate: GateModule | None = None) -> bytes:
    """Export the client graph, check it (checker, size, parity with torch), embed metadata."""
    wrapper = ExportWrapper(net, gate).eval().cpu()
    size = net.image_size
    example = torch.zeros(1, size, size, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter warns about tracing and its own deprecation; the graph
        # is verified below instead.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (example,), buffer,  # type: ignore[arg-type]
            input_names=["image"], output_names=["boxes", "scores"],
            dynamic_axes={"image": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    graph = onnx.load_from_string(buffer.getvalue())
    _store_banks_as_int8(graph)
    model_bytes = set_metadata(graph.SerializeToString(), metadata)
    try:
        onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise TrainingError(f"the exported ONNX graph is invalid: {exc}") from exc
    if len(model_bytes) > MAX_MODEL_BYTES:
        raise TrainingError(
            f"expected a model under {MAX_MODEL_BYTES} bytes, got {len(model_bytes)}")
    initializers = {t.name for t in onnx.load_from_string(model_bytes).graph.initializer}
    if gate is not None and REJECTION_INITIALIZER not in initializers:
        raise TrainingError("the exported graph lost the open-set gate's threshold")
    if check_parity:
        if gate is None:
            _check_parity(wrapper, model_bytes, size)
        else:  # random pixels would be rejected: check the graph with the gate open
            saved = gate.rejection_threshold.clone(), gate.margins.clone()
            gate.rejection_threshold.fill_(DISABLED)
            gate.margins.fill_(NO_RIVAL_RULE)
            try:
                _check_parity(wrapper, set_rejection_threshold(model_bytes, DISABLED), size)
            finally:
                gate.rejection_threshold.copy_(saved[0])
                gate.margins.copy_(saved[1])
    return model_bytes


def _store_banks_as_int8(model: onnx.ModelProto) -> None:
    """Store the gate's banks as int8 + a scale per photo, restored by DequantizeLinear
    under the same tensor name (a photo costs 1.3 kB instead of 5 kB of model)."""
    initializers = {t.name: t for t in model.graph.initializer}
    for name in INT8_STORED:
        if name not in initializers:
            continue
        parts = _int8_parts(onnx.numpy_helper.to_array(initializers[name]))
        model.graph.initializer.remove(initializers[name])
        model.graph.initializer.extend(onnx.numpy_helper.from_array(part, name + suffix)
                                       for suffix, part in parts.items())
        model.graph.node.insert(0, onnx.helper.make_node(
            "DequantizeLinear", [name + INT8_SUFFIX, name + SCALE_SUFFIX, name + ZERO_SUFFIX],
            [name], name=f"{name}.restore", axis=1))


def _int8_parts(value: np.ndarray) -> dict[str, np.ndarray]:
    """A [D, M] bank as the initializers that store it, by name suffix: values, scale, zero."""
    quantised, scale = int8_columns(value)
    return {INT8_SUFFIX: quantised, SCALE_SUFFIX: scale,
            ZERO_SUFFIX: np.zeros(scale.shape, np.int8)}


def replace_gate_constant(model: onnx.ModelProto, name: str, value: np.ndarray) -> bool:
    """Write a gate constant in place (int8-stored banks re-quantised); False if the graph
    has no such constant of that shape (the negatives may change their count of photos:
    the graph only takes their best similarity)."""
    initializers = {t.name: t for t in model.graph.initializer}
    stored = name in INT8_STORED and name + INT8_SUFFIX in initializers
    parts = _int8_parts(value) if stored else {"": value}
    kept_dims = -1 if name == "gate.negatives" else None  # the last one counts photos
    for suffix, part in parts.items():
        found = initializers.get(name + suffix)
        if found is None or tuple(found.dims)[:kept_dims] != part.shape[:kept_dims]:
            return False
    for suffix, part in parts.items():
        initializers[name + suffix].CopyFrom(onnx.numpy_helper.from_array(part, name + suffix))
    return True


def _check_parity(wrapper: ExportWrapper, model_bytes: bytes, size: int) -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    with torch.no_grad():
        unvoted, raw_scores, embedding = wrapper.unvoted(torch.from_numpy(image))
        boxes_t, scores_t = wrapper.voted(unvoted, raw_scores, embedding)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    boxes_o, scores_o = session.run(None, {"image": image})
    box_gap, score_gap = parity_gaps((boxes_t.numpy(), scores_t.numpy()), (boxes_o, scores_o),
                                     unvoted, raw_scores)
    if max(box_gap, score_gap) > PARITY_TOLERANCE:
        raise TrainingError(f"onnxruntime and torch disagree by {box_gap:.2e} on the boxes "
                            f"and {score_gap:.2e} on the scores of the same input")


def parity_gaps(expected: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray],
                unvoted: torch.Tensor, raw_scores: torch.Tensor) -> tuple[float, float]:
    """Largest box and score difference between two runs of the graph (torch's `expected`
    boxes and scores, onnxruntime's `got`), leaving out the boxes whose vote rounding may
    change: the vote cuts at an IoU and at a rank, so one voter of a box at a cut may come
    or go (`fragile_votes` on the torch run's `unvoted` boxes and `raw_scores`)."""
    score_gap = float(np.abs(expected[1] - got[1]).max())
    fragile = fragile_votes(unvoted, raw_scores, max(VOTE_FRAGILE, 2 * score_gap)).numpy()
    box_gap = float(np.abs(expected[0] - got[0]).max(axis=2)[~fragile].max(initial=0.0))
    return box_gap, score_gap
