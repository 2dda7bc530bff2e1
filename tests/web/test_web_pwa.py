"""The installable, offline web app: manifest, service worker, one stored model, compression."""

from __future__ import annotations

import gzip
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from web_harness import CITY, WebPage, open_context
from web_photos import render

from sightscan.web import WEB_ROOT


def photo(shape: str | None, seed: int) -> bytes:
    data: bytes
    data, _ = render(shape, np.random.default_rng(seed), (320, 240))
    return data


def test_the_page_meets_chromiums_install_criteria(web: WebPage) -> None:
    web.open()
    web.page.evaluate("navigator.serviceWorker.ready")
    cdp = web.page.context.new_cdp_session(web.page)
    errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    # Playwright's contexts are incognito, where Chromium never offers an install.
    assert [e["errorId"] for e in errors if e["errorId"] != "in-incognito"] == []
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == []
    # COOP/COEP: SharedArrayBuffer, so onnxruntime-web runs on several threads.
    assert web.page.evaluate("globalThis.crossOriginIsolated") is True
    assert web.errors == []


@pytest.mark.slow
def test_the_page_opens_and_detects_with_the_server_stopped(
    chromium: Any, second_server: Any
) -> None:
    with second_server() as url:
        context, web = open_context(chromium, url)
        web.open()
        web.choose_city()
        web.page.evaluate("navigator.serviceWorker.ready")
        web.page.wait_for_function("navigator.serviceWorker.controller !== null")
    # The server is gone: the page, onnxruntime and the model come from this device.
    web.page.reload()
    web.wait_for_model()
    status = web.page.text_content("#model-status") or ""
    assert "offline" in status
    result = web.detect(photo("red disc", 5))
    assert result["source"] == "photo"
    assert web.page.text_content("#result")
    context.close()


def test_the_model_is_stored_once_and_not_in_the_http_or_service_worker_cache(
    web: WebPage,
) -> None:
    web.open()
    web.choose_city()
    web.page.evaluate("navigator.serviceWorker.ready")
    stored = web.page.evaluate("""async (city) => {
        const { cachedModels } = await import('/app/detector.js');
        const records = await cachedModels();
        const url = `/api/cities/${city}/model`;
        let httpCached = true;
        try {
            const r = await fetch(url, { cache: 'only-if-cached', mode: 'same-origin' });
            httpCached = r.ok;
        } catch { httpCached = false; }
        let inCacheStorage = false;
        for (const key of await caches.keys()) {
            const cache = await caches.open(key);
            for (const request of await cache.keys()) {
                if (request.url.includes('/api/')) inCacheStorage = true;
            }
        }
        return { cities: records.map((r) => r.city), httpCached, inCacheStorage };
    }""", CITY)
    assert stored == {"cities": [CITY], "httpCached": False, "inCacheStorage": False}


def test_static_files_and_the_wasm_are_served_gzip_compressed(server: str) -> None:
    wasm = WEB_ROOT / "vendor" / "ort-wasm-simd-threaded.wasm"
    with httpx.Client(base_url=server) as client:
        response = client.get("/app/vendor/ort-wasm-simd-threaded.wasm",
                              headers={"Accept-Encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["content-type"] == "application/wasm"
        compressed = int(response.headers["content-length"])
        assert response.content == wasm.read_bytes()  # httpx decodes it
        assert compressed < 0.4 * wasm.stat().st_size
        again = client.get("/app/vendor/ort-wasm-simd-threaded.wasm", headers={
            "Accept-Encoding": "gzip", "If-None-Match": response.headers["etag"]})
        assert again.status_code == 304
        plain = client.get("/app/app.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == (WEB_ROOT / "app.js").read_bytes()
        with client.stream("GET", "/app/app.js", headers={"Accept-Encoding": "gzip"}) as raw:
            assert raw.headers["content-encoding"] == "gzip"
            body = b"".join(raw.iter_raw())
        assert gzip.decompress(body) == (WEB_ROOT / "app.js").read_bytes()


def test_the_python_files_of_the_web_package_are_not_served(server: str) -> None:
    assert httpx.get(f"{server}/app/__init__.py").status_code == 404


@pytest.mark.slow
def test_docs_load_with_no_request_leaving_the_server(web: WebPage) -> None:
    outside: list[str] = []

    def block_outside(route: Any) -> None:
        if urlsplit(route.request.url).hostname != "127.0.0.1":
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    web.page.route("**/*", block_outside)
    web.page.goto(web.base_url + "/docs")
    web.page.wait_for_selector(".swagger-ui .opblock")
    assert "SightScan" in (web.page.text_content(".swagger-ui .info .title") or "")
    web.open()
    web.choose_city()
    assert outside == []
