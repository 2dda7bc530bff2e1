"""Web client fixtures: a real tiny model, the API on loopback, and Debian Chromium.

One detector is trained per test session on generated photos (about 20 s on two cores),
published for the city SHAPETOWN in a temporary SQLite warehouse, and served by uvicorn
in a thread with the web page mounted. Every test gets a fresh browser context (empty
IndexedDB). The tests skip when /usr/bin/chromium is missing: no browser is downloaded.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web_harness import (
    CITY,
    INFO_CITY,
    SERVER_STATE,
    SIGHT_INFO,
    NoQueueScheduler,
    WebModel,
    WebPage,
    open_context,
    publish,
    serve,
)

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
    onnx: bytes = trained.onnx
    return onnx


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
