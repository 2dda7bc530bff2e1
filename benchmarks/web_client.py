"""Web client page weight and times in Debian Chromium; prints a markdown table.

    PYTHONPATH=src .venv/bin/python benchmarks/web_client.py [--model city.onnx] [--out DIR]

Serves the API with the page on loopback (temporary SQLite warehouse, the model published
as BENCHTOWN; without --model a small detector is trained on generated photos, ~20 s) and
measures, each in a fresh browser context:
- first visit: bytes the server sent (counted by an ASGI wrapper, so the service worker's
  precache is included) until the page is ready and the service worker installed, before
  any model; and the bytes of the model download;
- first detection at a throttled 20 Mbit/s link (CDP Network.emulateNetworkConditions,
  service workers blocked so every byte goes through the throttled page): from navigation
  to the first photo's result, with the photo chosen as soon as the page allows;
- camera frame time with Chromium's fake camera (--use-fake-device-for-media-stream): the
  detection time of 20 frames (median and worst);
- screenshots at 1280x800 and 390x844 (plain, and debug mode as a full page) written to
  --out, with the model used (model.onnx, for --model next time).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

CITY = "BENCHTOWN"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", "--disable-background-networking"]
MBIT = 1_000_000 / 8


class ByteCounter:
    """ASGI wrapper counting the response body bytes sent per path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent: dict[str, int] = defaultdict(int)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.body":
                self.sent[path] += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting_send)

    def total(self, exclude: str = "") -> int:
        return sum(n for p, n in self.sent.items() if not (exclude and p.endswith(exclude)))


def train_model() -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "web"))
    from web_photos import training_images

    from sightscan.training import TrainConfig, assemble_training_set, train_detector

    training_set = assemble_training_set(training_images(30, 10, seed=0, size=64), city=CITY,
                                         min_images_per_label=5, decode_size=64)
    config = TrainConfig(epochs=20, image_size=64, batch_size=8, lr=1e-2, threads=1,
                         frozen_blocks=3, seed=0)
    return train_detector(training_set, config).onnx


def serve(model: bytes, data_dir: Path) -> tuple[str, ByteCounter, Any]:
    import uvicorn

    from sightscan.api import create_app
    from sightscan.config import load_settings
    from sightscan.training.export import read_metadata
    from sightscan.warehouse import Warehouse
    from sightscan.warehouse.marts import refresh_marts
    from sightscan.warehouse.versions import add_model_version

    settings = load_settings(sightscan_data_dir=data_dir, sightscan_rate_limit_per_minute=100_000)
    warehouse = Warehouse.from_settings(settings, migrate=True)
    with warehouse.transaction() as session:
        metadata = read_metadata(model)
        add_model_version(session, warehouse.blobs, city=CITY, model_bytes=model,
                          metadata=metadata, metrics=metadata.get("metrics", {}),
                          labelled_images=1)
        refresh_marts(session)

    class NoQueue:
        def submit(self, stage: str, city: str, **options: Any) -> None:
            return None

    counter = ByteCounter(create_app(settings, warehouse=warehouse, scheduler=NoQueue()))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(counter, log_level="warning", ws="none"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", counter, server


def photo_png() -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "web"))
    import numpy as np
    from web_photos import render

    return render("red disc", np.random.default_rng(1), (1024, 768))[0]


def first_visit(browser: Any, url: str, counter: ByteCounter) -> tuple[int, int]:
    counter.sent.clear()
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/app/")
    page.wait_for_function("document.getElementById('city').options.length > 1")
    page.evaluate("navigator.serviceWorker.ready")
    page.wait_for_timeout(1500)  # the precache finishes after `ready` resolves
    before_model = counter.total()
    page.select_option("#city", CITY)
    page.wait_for_function("!document.getElementById('photo').disabled")
    model = counter.sent[f"/api/cities/{CITY}/model"]
    context.close()
    return before_model, model


def first_detection(browser: Any, url: str, png: bytes, mbit: float) -> dict[str, float]:
    """Seconds from navigation to the city list, the model ready, the first result (0: no limit)."""
    context = browser.new_context(service_workers="block")
    page = context.new_page()
    if mbit:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": 20, "downloadThroughput": mbit * MBIT,
            "uploadThroughput": mbit * MBIT})
    page.add_init_script(f"localStorage.setItem('sightscan.city', '{CITY}')")
    started = time.perf_counter()
    page.goto(url + "/app/")
    page.wait_for_function("document.getElementById('city').options.length > 1")
    listed = time.perf_counter() - started
    page.wait_for_function("!document.getElementById('photo').disabled", timeout=120_000)
    ready = time.perf_counter() - started
    page.set_input_files("#photo", files=[{"name": "p.png", "mimeType": "image/png",
                                           "buffer": png}])
    page.wait_for_function("(window.detectionCount ?? 0) > 0")
    done = time.perf_counter() - started
    context.close()
    return {"page": listed, "model ready": ready, "first detection": done}


def camera_frames(browser: Any, url: str, frames: int = 20) -> list[float]:
    context = browser.new_context()
    context.grant_permissions(["camera"], origin=url)
    page = context.new_page()
    page.goto(url + "/app/")
    page.wait_for_function("document.getElementById('city').options.length > 1")
    page.select_option("#city", CITY)
    page.wait_for_function("!document.getElementById('photo').disabled")
    page.evaluate("""() => { window.frameTimes = [];
        const seen = () => { if (window.lastDetections?.source === 'camera')
            window.frameTimes.push(window.lastDetections.ms); };
        new MutationObserver(seen).observe(document.getElementById('detections-json'),
            { childList: true, characterData: true, subtree: true }); }""")
    page.click("#camera")
    page.wait_for_function(f"window.frameTimes.length >= {frames + 2}", timeout=120_000)
    times: list[float] = page.evaluate("window.frameTimes")[2:]  # the first runs warm up
    context.close()
    return times


def screenshots(browser: Any, url: str, png: bytes, out: Path) -> list[Path]:
    paths = []
    for name, viewport in (("desktop", {"width": 1280, "height": 800}),
                           ("phone", {"width": 390, "height": 844})):
        context = browser.new_context(viewport=viewport, device_scale_factor=1)
        page = context.new_page()
        page.goto(url + "/app/")
        page.wait_for_function("document.getElementById('city').options.length > 1")
        page.select_option("#city", CITY)
        page.wait_for_function("!document.getElementById('photo').disabled")
        page.set_input_files("#photo", files=[{"name": "p.png", "mimeType": "image/png",
                                               "buffer": png}])
        page.wait_for_function("(window.detectionCount ?? 0) > 0")
        path = out / f"client-{name}.png"
        page.screenshot(path=str(path))
        page.check("#debug")
        page.set_input_files("#photo", files=[{"name": "q.png", "mimeType": "image/png",
                                               "buffer": png}])
        page.wait_for_function("(window.detectionCount ?? 0) > 1")
        debug = out / f"client-{name}-debug.png"
        page.screenshot(path=str(debug), full_page=True)
        paths += [path, debug]
        context.close()
    return paths


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an ONNX SightScan model (default: train one)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "web-bench")
    parser.add_argument("--mbit", type=float, default=20.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.model.read_bytes() if args.model else train_model()
    (args.out / "model.onnx").write_bytes(model)  # reusable with --model
    png = photo_png()
    with tempfile.TemporaryDirectory() as tmp:
        url, counter, server = serve(model, Path(tmp))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            before_model, model_bytes = first_visit(browser, url, counter)
            timing = first_detection(browser, url, png, args.mbit)
            unthrottled = first_detection(browser, url, png, 0)
            frames = camera_frames(browser, url)
            shots = screenshots(browser, url, png, args.out)
            browser.close()
        server.should_exit = True
    print("| measure | value |\n|---|---|")
    print(f"| first visit before the model (compressed, incl. service-worker precache) "
          f"| {before_model / 1e6:.2f} MB |")
    print(f"| model download | {model_bytes / 1e6:.2f} MB |")
    for name, seconds in timing.items():
        print(f"| {name} at {args.mbit:g} Mbit/s (from navigation) | {seconds:.2f} s "
              f"(unthrottled {unthrottled[name]:.2f} s) |")
    print(f"| camera frame detection, median / worst of {len(frames)} | "
          f"{statistics.median(frames):.0f} / {max(frames):.0f} ms |")
    print("\nscreenshots: " + ", ".join(str(p) for p in shots))


if __name__ == "__main__":
    main()
