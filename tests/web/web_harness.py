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
    fakes: Any = None

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


GAZETTEER = [
    {"key": "LISBON", "name": "Lisbon", "country": "PT", "population": 545796},
    {"key": "MUNICH", "name": "Munich", "country": "DE", "population": 1471508},
    {"key": "MUNSTER", "name": "Münster", "country": "DE", "population": 315293},
    {"key": "SHAPETOWN", "name": "Shape Town", "country": "ZZ", "population": 1000},
]


@dataclass
class ContractFakes:
    """The API contract's gazetteer and city-status routes, answered inside the browser.

    Installed only for routes the app under test lacks (the cloud-cities branch implements
    them); the page's requests then get the documented JSON. With the fake gazetteer, a
    request for a city outside it is answered 400 with suggestions, as the contract says;
    known cities go on to the real API.
    """

    gazetteer: bool
    status: bool
    stages: list[dict[str, Any]] = field(default_factory=lambda: [
        {"stage": "requested", "requests": 1, "requests_needed": 3},
        {"stage": "crawl", "requests": 3, "requests_needed": 3},
        {"stage": "failed", "requests": 3, "requests_needed": 3,
         "error": "no photos of its sights were found"},
    ])
    status_calls: int = 0

    def install(self, page: Any) -> None:
        if self.gazetteer:
            page.route("**/api/gazetteer?*", self._gazetteer)
            page.route("**/api/cities/*/add", self._add)
        if self.status:
            page.route("**/api/cities/*/status", self._status)

    @staticmethod
    def _fold(text: str) -> str:
        import unicodedata

        decomposed = unicodedata.normalize("NFKD", text.casefold())
        return "".join(ch for ch in decomposed if not unicodedata.combining(ch))

    def _gazetteer(self, route: Any) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(route.request.url).query)
        text = self._fold(query.get("q", [""])[0])
        limit = int(query.get("limit", ["10"])[0])
        found = [c for c in GAZETTEER
                 if self._fold(c["name"]).startswith(text) or self._fold(c["key"]) == text]
        route.fulfill(json={"cities": found[:limit]})

    def _add(self, route: Any) -> None:
        from urllib.parse import unquote, urlsplit

        name = unquote(urlsplit(route.request.url).path.split("/")[-2])
        if any(self._fold(name) in (self._fold(c["name"]), self._fold(c["key"])) for c in GAZETTEER):
            route.continue_()
            return
        first = self._fold(name)[:1]
        suggestions = [c["name"] for c in GAZETTEER if self._fold(c["name"]).startswith(first)]
        route.fulfill(status=400, json={"detail": f"unknown city {name!r}",
                                        "suggestions": suggestions})

    def _status(self, route: Any) -> None:
        from urllib.parse import unquote, urlsplit

        city = unquote(urlsplit(route.request.url).path.split("/")[-2])
        stage = self.stages[min(self.status_calls, len(self.stages) - 1)]
        self.status_calls += 1
        route.fulfill(json={"city": city, "name": None, "state": "", "error": None,
                            "model_version": None, **stage})
