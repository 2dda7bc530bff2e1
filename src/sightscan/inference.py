"""Offline sight detection with a downloaded SightScan model (onnxruntime + numpy + Pillow).

One .onnx file is the whole model: the graph plus JSON metadata under metadata_props
"sightscan" (class names, input size, score threshold, metrics). This module never imports
torch, so clients stay small. Photos are stretched to the model's square input size
(bilinear, no letterbox) after EXIF orientation; boxes come back relative to the photo.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sightscan.detections import Box, Detection
from sightscan.errors import InvalidImageError, ModelFormatError
from sightscan.images import decode_checked_rgb, read_photo

METADATA_KEY = "sightscan"
MODEL_FORMAT = "sightscan-detector"
ImageInput = Image.Image | bytes | str | Path


def _to_rgb(image: ImageInput, at_least: int | None = None) -> Image.Image:
    """The photo as an RGB image, checked; `at_least` lets a JPEG decode at a smaller scale."""
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    if isinstance(image, str | Path):
        data = read_photo(image)
    elif isinstance(image, bytes | bytearray):
        data = bytes(image)
    else:
        kind = type(image).__name__
        raise InvalidImageError(f"expected a PIL image, bytes or a path, got {kind}")
    return decode_checked_rgb(data, at_least=at_least)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression; indices kept, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return keep


class Detector:
    """A loaded SightScan model; `detect` returns the sights in a photo."""

    def __init__(self, session: Any, metadata: dict[str, Any]) -> None:
        self._session = session
        self.metadata = metadata
        self.class_names: list[str] = list(metadata["class_names"])
        self.input_size = int(metadata["input"]["shape"][1])
        self.score_threshold = float(metadata.get("score_threshold", 0.5))
        self.nms_iou = float(metadata.get("nms_iou", 0.5))
        self.max_detections = int(metadata.get("max_detections", 20))

    @classmethod
    def from_bytes(cls, data: bytes, *, threads: int = 1) -> Detector:
        """Load a model from bytes; ModelFormatError when they are not a SightScan model."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several untyped errors for bad files
            raise ModelFormatError(
                f"not a SightScan model: not a valid ONNX file ({exc.__class__.__name__})"
            ) from None
        raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ModelFormatError(
                "not a SightScan model: the ONNX file has no 'sightscan' metadata")
        try:
            metadata = json.loads(raw)
            if metadata.get("format") != MODEL_FORMAT:
                raise ValueError(f"format {metadata.get('format')!r}")
            names = metadata["class_names"]
            shape = metadata["input"]["shape"]
            if not names or len(shape) != 4 or int(shape[1]) != int(shape[2]):
                raise ValueError("class names or input shape")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelFormatError(f"not a SightScan model: invalid metadata ({exc})") from None
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if inputs != ["image"] or outputs != ["boxes", "scores"]:
            raise ModelFormatError(
                f"not a SightScan model: unexpected inputs {inputs} / outputs {outputs}")
        return cls(session, metadata)

    @classmethod
    def from_path(cls, path: str | Path, *, threads: int = 1) -> Detector:
        """Load a model from an .onnx file."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ModelFormatError(f"cannot read the model file {path}: {exc.strerror}") from None
        return cls.from_bytes(data, threads=threads)

    def preprocess(self, image: ImageInput) -> np.ndarray:
        """A photo -> the model input: uint8 RGB [S, S, 3], stretched with bilinear resampling."""
        rgb = _to_rgb(image, at_least=self.input_size)
        size = (self.input_size, self.input_size)
        if rgb.size != size:
            rgb = rgb.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)

    def raw_outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the graph on uint8 [B, S, S, 3]: (boxes [B, N, 4], scores [B, N, C])."""
        boxes, scores = self._session.run(None, {"image": batch})
        return boxes, scores

    def postprocess(self, boxes: np.ndarray, scores: np.ndarray, min_score: float,
                    max_detections: int, agnostic: bool = True) -> list[Detection]:
        """One photo's raw outputs -> detections: threshold, per-class NMS, cross-class NMS."""
        cells, classes = np.nonzero(scores >= min_score)
        if cells.size == 0:
            return []
        values = scores[cells, classes]
        picked: list[tuple[float, int, int]] = []
        for cls in np.unique(classes):
            idx = np.nonzero(classes == cls)[0]
            for k in nms(boxes[cells[idx]], values[idx], self.nms_iou):
                picked.append((float(values[idx[k]]), int(cells[idx[k]]), int(cls)))
        picked.sort(key=lambda t: -t[0])
        if agnostic:
            # One sight, one answer: drop a weaker class guess on the same place.
            kept_boxes = np.array([boxes[c] for _, c, _ in picked]).reshape(-1, 4)
            keep = nms(kept_boxes, np.array([s for s, _, _ in picked]), 0.7)
            picked = [picked[k] for k in sorted(keep)]
        result: list[Detection] = []
        for score, cell, cls in picked[:max_detections]:
            x1, y1, x2, y2 = (float(v) for v in np.clip(boxes[cell], 0.0, 1.0))
            if x2 - x1 <= 1e-6 or y2 - y1 <= 1e-6:
                continue
            result.append(Detection(self.class_names[cls], score, Box(x1, y1, x2, y2)))
        return result

    def detect(self, image: ImageInput, score_threshold: float | None = None) -> list[Detection]:
        """Sights in the photo, best first; none when no known sight scores above the threshold."""
        threshold = self.score_threshold if score_threshold is None else score_threshold
        boxes, scores = self.raw_outputs(self.preprocess(image)[None])
        return self.postprocess(boxes[0], scores[0], threshold, self.max_detections)

    def detect_many(self, images: Sequence[ImageInput], score_threshold: float | None = None,
                    *, agnostic: bool = True, max_detections: int | None = None,
                    batch_size: int = 8) -> list[list[Detection]]:
        """`detect` over several photos, run in small batches."""
        threshold = self.score_threshold if score_threshold is None else score_threshold
        limit = self.max_detections if max_detections is None else max_detections
        results: list[list[Detection]] = []
        for start in range(0, len(images), batch_size):
            batch = np.stack([self.preprocess(im) for im in images[start:start + batch_size]])
            boxes, scores = self.raw_outputs(batch)
            results.extend(self.postprocess(b, s, threshold, limit, agnostic)
                           for b, s in zip(boxes, scores, strict=True))
        return results


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def draw_detections(image: ImageInput, detections: Sequence[Detection],
                    debug: bool = False) -> Image.Image:
    """A copy of the photo with each sight's name; debug mode adds its box and score."""
    canvas = _to_rgb(image).copy()
    draw = ImageDraw.Draw(canvas)
    width, height = canvas.size
    font = _font(max(12, min(width, height) // 28))
    line = max(2, min(width, height) // 200)
    for det in detections:
        x1, y1 = det.box.x1 * width, det.box.y1 * height
        x2, y2 = det.box.x2 * width, det.box.y2 * height
        text = f"{det.label} {det.score:.2f}" if debug else det.label
        if debug:
            draw.rectangle((x1, y1, x2, y2), outline=(255, 64, 32), width=line)
        left, top, right, bottom = draw.textbbox((x1 + line, y1 + line), text, font=font)
        draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(0, 0, 0))
        draw.text((x1 + line, y1 + line), text, fill=(255, 255, 255), font=font)
    return canvas
