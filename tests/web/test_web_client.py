"""The web client in Debian Chromium against the real API and a real (tiny) model."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from web_harness import CITY, WebModel, WebPage
from web_photos import render

from sightscan.detections import Detection

BOX_TOLERANCE = 0.02


def photo(shape: str | None, seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A generated PNG photo (bigger than the model input, not square: a real stretch)."""
    data: bytes
    data, _ = render(shape, np.random.default_rng(seed), size)
    return data


def assert_same_detections(page: list[dict[str, Any]], python: list[Detection]) -> None:
    assert [d["label"] for d in page] == [d.label for d in python]
    for ours, theirs in zip(page, python, strict=True):
        expected = [theirs.box.x1, theirs.box.y1, theirs.box.x2, theirs.box.y2]
        assert ours["box"] == pytest.approx(expected, abs=BOX_TOLERANCE)
        assert ours["score"] == pytest.approx(theirs.score, abs=1e-3)


def test_the_city_list_shows_the_city_with_a_model(web: WebPage) -> None:
    web.open()
    assert web.page.url.endswith("/app/")
    options = web.page.eval_on_selector_all("#city option", "els => els.map(e => e.value)")
    assert CITY in options
    assert web.errors == []


def photo_python_detects(web_model: WebModel, shape: str) -> tuple[bytes, list[Detection]]:
    """A generated photo of `shape` and the Python detections, preferring a correct answer.

    The web tests compare the browser with Python, not the tiny model's quality, so a photo
    the model gets wrong still serves when no correct one turns up.
    """
    candidates = []
    for seed in range(12):
        data = photo(shape, seed)
        detections = web_model.detector.detect(data)
        if detections and detections[0].label == shape:
            return data, detections
        if detections:
            candidates.append((data, detections))
    if not candidates:
        pytest.fail(f"the test model finds nothing in 12 photos of a {shape}")
    return candidates[0]


@pytest.mark.parametrize("shape", ["red disc", "blue square"])
def test_a_photo_shows_the_sights_found_by_the_python_detector(
    web: WebPage, web_model: WebModel, shape: str
) -> None:
    data, python = photo_python_detects(web_model, shape)
    web.open()
    web.choose_city()
    result = web.detect(data)
    assert_same_detections(result["detections"], python)
    shown = list(dict.fromkeys(d.label for d in python))
    assert web.page.text_content("#result") == ", ".join(shown)
    assert web.errors == []


BROWSER_INPUT = """async ([b64, type, side]) => {
    const { decodePhoto, pixelsOf, resizeBilinear } = await import('/app/detector.js');
    const blob = await (await fetch(`data:${type};base64,${b64}`)).blob();
    const bitmap = await decodePhoto(blob);
    const rgba = pixelsOf(bitmap, bitmap.width, bitmap.height);
    return Array.from(resizeBilinear(rgba, bitmap.width, bitmap.height, side));
}"""


def browser_input(web: WebPage, data: bytes, mime_type: str, side: int) -> np.ndarray:
    """The model input the page computes for a photo."""
    pixels = web.page.evaluate(BROWSER_INPUT, [base64.b64encode(data).decode(), mime_type, side])
    return np.array(pixels, dtype=np.uint8).reshape(side, side, 3)


@pytest.mark.parametrize("size", [(317, 229), (40, 30), (64, 200)])
def test_the_browser_input_equals_pillows_bilinear_stretch(
    web: WebPage, web_model: WebModel, size: tuple[int, int]
) -> None:
    web.open()
    data = photo("red disc", 3, size)
    side = web_model.detector.input_size
    assert np.array_equal(browser_input(web, data, "image/png", side),
                          web_model.detector.preprocess(data))


def test_the_browser_applies_the_exif_orientation_like_pillow(
    web: WebPage, web_model: WebModel
) -> None:
    image = Image.open(io.BytesIO(photo("blue square", 5, (300, 160))))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    web.open()
    side = web_model.detector.input_size
    ours = browser_input(web, buffer.getvalue(), "image/jpeg", side).astype(int)
    expected = web_model.detector.preprocess(buffer.getvalue()).astype(int)
    # JPEG decoders may round differently by a level or two; orientation errors are far larger.
    assert np.abs(ours - expected).mean() < 1.0
    unrotated = web_model.detector.preprocess(image).astype(int)
    assert np.abs(ours - unrotated).mean() > 10 * np.abs(ours - expected).mean() + 5


def test_a_photo_without_a_sight_shows_no_known_sight(
    web: WebPage, web_model: WebModel
) -> None:
    empty = [data for data in (photo(None, seed) for seed in range(12))
             if web_model.detector.detect(data) == []]
    assert empty, "the test model finds a sight in every photo without one"
    web.open()
    web.choose_city()
    assert web.detect(empty[0])["detections"] == []
    assert web.page.text_content("#result") == "No known sight"


def test_the_model_is_downloaded_once_across_detections_and_a_reload(web: WebPage) -> None:
    web.open()
    web.choose_city()
    web.detect(photo("red disc", 5), "first.png")
    web.detect(photo("blue square", 6), "second.png")
    web.page.reload()
    web.wait_for_model()  # the page remembers the city and reads the model from IndexedDB
    assert "stored on this device" in (web.page.text_content("#model-status") or "")
    web.detect(photo("red disc", 7), "third.png")
    assert len(web.model_downloads) == 1
    assert web.errors == []


def test_the_webcam_runs_detection_on_the_fake_camera(web: WebPage) -> None:
    web.open()
    web.choose_city()
    web.page.click("#camera")
    web.page.wait_for_function(
        "window.lastDetections?.source === 'camera' && window.detectionCount >= 2")
    assert web.page.text_content("#camera") == "Stop camera"
    web.page.click("#camera")
    assert web.page.text_content("#camera") == "Start camera"
    assert web.errors == []


def test_requesting_a_city_and_contributing_a_photo_reach_the_api(web: WebPage) -> None:
    web.open()
    web.page.fill("#request-city", "Lisbon")
    web.page.click("#request-form button")
    web.page.wait_for_function(
        "document.getElementById('help-result').textContent.includes('Lisbon')")
    assert "1 request(s)" in (web.page.text_content("#help-result") or "")

    web.page.select_option("#upload-city", CITY)
    web.page.fill("#upload-sight", "Belém Tower")
    web.page.set_input_files("#upload-photo", files=[
        {"name": "tower.png", "mimeType": "image/png", "buffer": photo("red disc", 8)}])
    web.page.click("#upload-form button")
    web.page.wait_for_function(
        "document.getElementById('help-result').textContent.startsWith('Thanks')")
    assert "added to Shape" in (web.page.text_content("#help-result") or "")
    assert web.errors == []
