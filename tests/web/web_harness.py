"""Helpers of the web client tests: the page driver and the published test model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

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


GAZETTEER: list[dict[str, Any]] = [
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
        folded = self._fold(name)
        if any(folded in (self._fold(c["name"]), self._fold(c["key"])) for c in GAZETTEER):
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


SERVER_STATE: dict[str, Any] = {}
INFO_CITY = "INFOTOWN"
SIGHT_INFO = {
    "red disc": {
        "description": "A red disc, the test city's round landmark.",
        "url": "https://www.wikidata.org/wiki/Q42",
        "credits": [{"author": "Ada Example", "licence": "CC BY-SA 4.0",
                     "source": "https://commons.wikimedia.org/wiki/File:Disc.png"}],
    },
    "blue square": {"description": "A blue square.", "credits": []},
}


def publish(warehouse: Any, city: str, onnx: bytes, extra: dict[str, Any]) -> None:
    """Publish `onnx` as the next model of `city`, its metadata extended with `extra`."""
    from sightscan.training.export import read_metadata, set_metadata
    from sightscan.warehouse.marts import refresh_marts
    from sightscan.warehouse.versions import add_model_version

    metadata = {**read_metadata(onnx), **extra}
    with warehouse.transaction() as session:
        add_model_version(session, warehouse.blobs, city=city,
                          model_bytes=set_metadata(onnx, metadata), metadata=metadata,
                          metrics=metadata["metrics"], labelled_images=70)
        refresh_marts(session)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn in a thread on a free loopback port; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="on")
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def open_context(chromium: Any, server: str, **options: Any) -> tuple[Any, WebPage]:
    """A new browser context and page on `server`, recording errors and model downloads.

    The gazetteer and city-status routes of the API contract are faked in the browser only
    while the app under test lacks them (see web_harness.ContractFakes).
    """
    options.setdefault("viewport", {"width": 1100, "height": 1000})
    context = chromium.new_context(**options)
    context.grant_permissions(["camera"], origin=server)
    context.add_init_script(TEST_CONFIG)
    page = context.new_page()
    page.set_default_timeout(20_000)
    web_page = WebPage(page, server)
    page.on("console", lambda m: m.type == "error" and web_page.errors.append(m.text))  # type: ignore[func-returns-value]
    page.on("pageerror", lambda exc: web_page.errors.append(str(exc)))

    def count_model_downloads(request: Any) -> None:
        if request.method == "GET" and urlsplit(request.url).path.endswith("/model"):
            web_page.model_downloads.append(request.url)

    page.on("request", count_model_downloads)
    app = SERVER_STATE.get("app")
    paths = {getattr(route, "path", None) for route in app.routes} if app else set()
    web_page.fakes = ContractFakes(
        gazetteer="/api/gazetteer" not in paths,
        status="/api/cities/{city}/status" not in paths,
    )
    web_page.fakes.install(page)
    return context, web_page


# Short refresh periods so the tests see the city list and a request's progress update.
TEST_CONFIG = "window.sightscanConfig = {cityRefreshMs: 1000, statusRefreshMs: 300};"
