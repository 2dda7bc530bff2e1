import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sightscan.detections import Box, Detection
from sightscan.errors import InvalidImageError, ModelFormatError
from sightscan.inference import Detector, draw_detections, nms

onnx = pytest.importorskip("onnx")
SIZE = 64


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    """An untrained, exported SightScan model (enough to test the client side)."""
    pytest.importorskip("torch")
    from sightscan.training.export import base_metadata, export_onnx
    from sightscan.training.model import SightNet

    net = SightNet(2, SIZE, pretrained=False).eval()
    return export_onnx(net, base_metadata(["Eiffel Tower", "Louvre"], SIZE))


def _photo(size: tuple[int, int] = (80, 60), fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 160, 200)).save(out, format=fmt)
    return out.getvalue()


def test_a_model_loads_with_its_metadata(model_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / "city.onnx"
    path.write_bytes(model_bytes)
    detector = Detector.from_path(path)
    assert detector.class_names == ["Eiffel Tower", "Louvre"]
    assert detector.input_size == SIZE
    assert detector.metadata["backbone"] == "efficientnet-lite0"


def test_detect_accepts_bytes_paths_and_pil_images(model_bytes: bytes, tmp_path: Path) -> None:
    detector = Detector.from_bytes(model_bytes)
    photo = _photo()
    path = tmp_path / "photo.jpg"
    path.write_bytes(photo)
    results = [detector.detect(x, score_threshold=0.0) for x in (photo, path, str(path),
                                                                   Image.open(io.BytesIO(photo)))]
    assert all(r == results[0] for r in results)
    assert results[0] and all(isinstance(d, Detection) for d in results[0])
    assert detector.detect(photo, score_threshold=1.01) == []


def test_a_broken_photo_is_an_invalid_image(model_bytes: bytes) -> None:
    with pytest.raises(InvalidImageError):
        Detector.from_bytes(model_bytes).detect(b"not a photo")


def test_bytes_that_are_not_onnx_are_refused() -> None:
    with pytest.raises(ModelFormatError, match="not a SightScan model"):
        Detector.from_bytes(b"definitely not onnx")


def _plain_onnx(metadata: str | None = None) -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, {"sightscan": metadata})
    serialized: bytes = model.SerializeToString()
    return serialized


def test_an_onnx_model_without_sightscan_metadata_is_refused() -> None:
    with pytest.raises(ModelFormatError, match="no 'sightscan' metadata"):
        Detector.from_bytes(_plain_onnx())


def test_an_onnx_model_with_broken_metadata_is_refused() -> None:
    with pytest.raises(ModelFormatError, match="invalid metadata"):
        Detector.from_bytes(_plain_onnx("{not json"))
    with pytest.raises(ModelFormatError, match="invalid metadata"):
        Detector.from_bytes(_plain_onnx(json.dumps({"format": "other"})))


def test_a_missing_model_file_is_a_model_format_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="cannot read"):
        Detector.from_path(tmp_path / "missing.onnx")


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 1, 1], [0, 0, 0.95, 1], [0, 0, 0.2, 0.2]], dtype=np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.3]), 0.5) == [1, 2]


def test_draw_detections_shows_names_and_in_debug_mode_boxes() -> None:
    photo = Image.new("RGB", (200, 120), (90, 90, 90))
    detection = Detection("Louvre", 0.87, Box(0.1, 0.1, 0.9, 0.9))
    plain = draw_detections(photo, [detection])
    debug = draw_detections(photo, [detection], debug=True)
    assert plain.size == photo.size and photo.getpixel((100, 100)) == (90, 90, 90)
    assert plain.getpixel((20, 100)) == (90, 90, 90)  # no box outline without debug
    assert debug.getpixel((20, 100)) != (90, 90, 90)


def test_inference_never_imports_torch(model_bytes: bytes, tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(model_bytes)
    photo = tmp_path / "p.png"
    photo.write_bytes(_photo(fmt="PNG"))
    code = textwrap.dedent(f"""
        import sys
        from sightscan.inference import Detector, draw_detections
        detector = Detector.from_path({str(model)!r})
        found = detector.detect({str(photo)!r}, score_threshold=0.0)
        draw_detections({str(photo)!r}, found, debug=True)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {{"torch", "onnx"}})
        print(len(found), heavy)
        sys.exit(1 if heavy else 0)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={"PYTHONPATH": str(__import__("sightscan").__path__[0] + "/..")},
                             timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
