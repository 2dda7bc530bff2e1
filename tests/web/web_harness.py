"""Helpers of the web client tests: the page driver and the published test model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CITY = "SHAPETOWN"


class NoQueueScheduler:
    """Runs no pipeline work: the web tests never reach a crawl threshold."""

    def submit(self, stage: str, city: str, **options: Any) -> int | None:
        return None


@dataclass
class WebModel:
    """The published test model: ONNX bytes and a Python Detector on the same bytes."""

    onnx: bytes
    detector: Any


@dataclass
class WebPage:
    """A page of the client plus what it did: console errors and model downloads."""

    page: Any
    base_url: str
    errors: list[str] = field(default_factory=list)
    model_downloads: list[str] = field(default_factory=list)

    def open(self) -> None:
        """Load the page at / (redirected to /app/)."""
        self.page.goto(self.base_url + "/")
        self.page.wait_for_function("document.getElementById('city').options.length > 1")

    def choose_city(self, city: str = CITY) -> None:
        """Choose the city and wait until its model is loaded."""
        self.page.select_option("#city", city)
        self.wait_for_model()

    def wait_for_model(self) -> None:
        self.page.wait_for_function("!document.getElementById('photo').disabled")

    def detect(self, png: bytes, name: str = "photo.png") -> dict[str, Any]:
        """Choose a photo and return the detections the page shows (window.lastDetections)."""
        before = self.page.evaluate("window.detectionCount ?? 0")
        self.page.set_input_files("#photo", files=[
            {"name": name, "mimeType": "image/png", "buffer": png}])
        self.page.wait_for_function(f"(window.detectionCount ?? 0) > {before}")
        result: dict[str, Any] = self.page.evaluate("window.lastDetections")
        return result
