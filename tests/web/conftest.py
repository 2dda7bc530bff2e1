"""Web client fixtures: a real tiny model, the API on loopback, and Debian Chromium.

One detector is trained per test session on generated photos (about 20 s on two cores),
published for the city SHAPETOWN in a temporary SQLite warehouse, and served by uvicorn
in a thread with the web page mounted. Every test gets a fresh browser context (empty
IndexedDB). The tests skip when /usr/bin/chromium is missing: no browser is downloaded.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from web_harness import CITY, ContractFakes, NoQueueScheduler, WebModel, WebPage

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]
MODEL_SIZE = 64

if not CHROMIUM.exists():
    pytest.skip("the web client tests need Debian Chromium at /usr/bin/chromium "
                "(apt-get install chromium)", allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api",
                                      reason="the web client tests need playwright")


def _train_model() -> bytes:
    from web_photos import training_images

    from sightscan.training import TrainConfig, assemble_training_set, train_detector

    training_set = assemble_training_set(
        training_images(30, 10, seed=0, size=MODEL_SIZE), city=CITY,
        min_images_per_label=5, decode_size=MODEL_SIZE)
    trained = train_detector(training_set, TrainConfig(
        epochs=20, image_size=MODEL_SIZE, batch_size=8, lr=1e-2, threads=1,
        frozen_blocks=3, seed=0))
    return trained.onnx


@pytest.fixture(scope="session")
def web_model(tmp_path_factory: pytest.TempPathFactory) -> WebModel:
    """A small detector of a red disc and a blue square, trained on generated photos.

    Under pytest-xdist the workers share one training run (a file lock in the run's
    temporary folder), so the model is trained once per test run.
    """
    from sightscan.inference import Detector

    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        onnx = _train_model()
    else:
        path = tmp_path_factory.getbasetemp().parent / "web-model.onnx"
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.is_file():
                path.write_bytes(_train_model())
            onnx = path.read_bytes()
    return WebModel(onnx, Detector.from_bytes(onnx))


@pytest.fixture(scope="session")
def server(web_model: WebModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the API (with the web page) on a fresh SQLite warehouse."""
    from sightscan.api import create_app
    from sightscan.api.routers.web import mount_web
    from sightscan.config import Settings, load_settings
    from sightscan.training.export import read_metadata
    from sightscan.warehouse import Warehouse
    from sightscan.warehouse.marts import refresh_marts
    from sightscan.warehouse.versions import add_model_version

    with pytest.MonkeyPatch.context() as patch:
        names = {name.upper() for name in Settings.model_fields}
        for variable in list(os.environ):
            if variable.upper() in names:
                patch.delenv(variable)
        settings = load_settings(
            sightscan_data_dir=tmp_path_factory.mktemp("web") / "data",
            sightscan_rate_limit_per_minute=10_000,
            sightscan_city_request_threshold=3,
        )
    warehouse = Warehouse.from_settings(settings, migrate=True)
    with warehouse.transaction() as session:
        metadata = read_metadata(web_model.onnx)
        add_model_version(session, warehouse.blobs, city=CITY, model_bytes=web_model.onnx,
                          metadata=metadata, metrics=metadata["metrics"], labelled_images=70)
        refresh_marts(session)
    publish(warehouse, INFO_CITY, web_model.onnx, {"sights": SIGHT_INFO})
    app = create_app(settings, warehouse=warehouse, scheduler=NoQueueScheduler())
    if not any(getattr(route, "path", None) == "/app" for route in app.routes):
        mount_web(app)  # until create_app mounts the page itself
    with serve(app) as url:
        SERVER_STATE["app"] = app
        SERVER_STATE["warehouse"] = warehouse
        SERVER_STATE["settings"] = settings
        yield url
    warehouse.dispose()


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


@pytest.fixture
def second_server(server: str) -> Callable[[], Any]:
    """Start another API on the same warehouse (another origin), to stop it mid-test."""
    from sightscan.api import create_app

    def start() -> Any:
        app = create_app(SERVER_STATE["settings"], warehouse=SERVER_STATE["warehouse"],
                         scheduler=NoQueueScheduler())
        return serve(app)

    return start


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian Chromium driven by Playwright (never a downloaded browser)."""
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def web(chromium: Any, server: str) -> Iterator[WebPage]:
    """A fresh browser context (empty model cache) on the client page."""
    context, web_page = open_context(chromium, server)
    yield web_page
    context.close()


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
    page.on("console", lambda m: m.type == "error" and web_page.errors.append(m.text))
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
