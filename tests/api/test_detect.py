"""POST /api/cities/{city}/detect runs the city's real current model on the server."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from sightscan.detections import Box, Label
from sightscan.inference import Detector

pytest.importorskip("torch", reason="training a model needs the train extra")


def _photo(shape: str | None, seed: int, size: int = 64) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (rng.randrange(60, 200),) * 3)
    draw = ImageDraw.Draw(image)
    x, y = rng.randrange(4, 20), rng.randrange(4, 20)
    if shape == "disc":
        draw.ellipse((x, y, x + 36, y + 36), fill=(220, 30, 30))
    elif shape == "bar":
        draw.rectangle((x, y, x + 36, y + 36), fill=(30, 30, 220))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    from sightscan.training import TrainConfig, TrainingImage, assemble_training_set, train_detector

    images = [
        TrainingImage(f"{shape}{i}", (lambda d: lambda: d)(_photo(shape, i)),
                      [Label(shape, Box(0.05, 0.05, 0.95, 0.95))])
        for shape in ("disc", "bar") for i in range(12)
    ]
    # The drawn photos are near-duplicates of each other by design: split them one by one.
    training_set = assemble_training_set(images, city=None, min_images_per_label=4,
                                         decode_size=64, group_duplicates=False)
    # 12 epochs: at 8 the box-bin head's disc still scores under the threshold
    config = TrainConfig(epochs=12, image_size=64, batch_size=8, lr=3e-3, threads=1,
                         frozen_blocks=3)
    model: bytes = train_detector(training_set, config).onnx
    return model


def test_detect_answers_what_the_offline_detector_finds(
    client: TestClient, publish_model: Callable[..., Any], model_bytes: bytes
) -> None:
    publish_model("Rome", model_bytes)
    photo = _photo("disc", 99)
    response = client.post("/api/cities/rome/detect", files={"image": ("p.png", photo)})
    assert response.status_code == 200
    expected = [d.as_dict() for d in Detector.from_bytes(model_bytes).detect(photo)]
    assert expected, "the trained model should find the disc"
    assert response.json() == {"image": "p.png", "detections": expected}


def test_detect_without_a_model_is_404(client: TestClient) -> None:
    response = client.post("/api/cities/Oslo/detect", files={"image": ("p.png", _photo(None, 1))})
    assert response.status_code == 404 and "no model" in response.json()["detail"]


def test_detect_rejects_a_file_that_is_not_a_photo(
    client: TestClient, publish_model: Callable[..., Any], model_bytes: bytes
) -> None:
    publish_model("Rome", model_bytes)
    response = client.post("/api/cities/Rome/detect", files={"image": ("p.jpg", b"hello")})
    assert response.status_code == 400


def test_detect_needs_the_image_field(client: TestClient) -> None:
    response = client.post("/api/cities/Rome/detect", files={"photo": ("p.png", _photo(None, 2))})
    assert response.status_code == 400 and "`image`" in response.json()["detail"]


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_detect_takes_phone_photos_in_avif_and_heic(
    client: TestClient, publish_model: Callable[..., Any], model_bytes: bytes, fmt: str
) -> None:
    from sightscan.images import register_formats

    register_formats()
    publish_model("Rome", model_bytes)
    out = io.BytesIO()
    Image.open(io.BytesIO(_photo("disc", 99))).save(out, fmt)
    response = client.post("/api/cities/rome/detect", files={"image": ("p.heic", out.getvalue())})
    assert response.status_code == 200, response.text
    assert response.json()["detections"] == [
        d.as_dict() for d in Detector.from_bytes(model_bytes).detect(out.getvalue())]
