"""Model downloads the user controls: size, progress, metered confirm, updates, bad downloads."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from web_harness import CITY, WebPage, open_context
from web_photos import render

STORED = """async () => {
    const { cachedModels } = await import('/app/detector.js');
    return (await cachedModels()).map((r) => [r.city, r.version, r.bytes.byteLength]);
}"""
DOWNLOAD_SHOWN = "!document.getElementById('download').hidden"


def photo(shape: str, seed: int) -> bytes:
    data: bytes
    data, _ = render(shape, np.random.default_rng(seed), (320, 240))
    return data


def pretend_newer_version(web: WebPage, body: bytes | None = None) -> None:
    """The API (as the browser sees it) now offers v2: same model, or `body` instead."""

    def metadata(route: Any) -> None:
        real = route.fetch()
        data = real.json()
        data["version"] = 2
        if body is not None:
            data["size_bytes"] = len(body)
        route.fulfill(response=real, body=json.dumps(data))

    def model(route: Any) -> None:
        real = route.fetch()
        route.fulfill(status=200, body=body if body is not None else real.body(),
                      headers={"Content-Type": "application/octet-stream",
                               "X-Model-Version": "2"})

    web.page.route("**/model/metadata", metadata)
    web.page.route("**/model", model)


@pytest.mark.slow
def test_the_size_and_a_progress_bar_are_shown_while_the_model_downloads(web: WebPage) -> None:
    web.open()
    cdp = web.page.context.new_cdp_session(web.page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20,
                                                  "downloadThroughput": 100_000,
                                                  "uploadThroughput": 100_000})
    web.page.select_option("#city", CITY)
    web.page.wait_for_function("""(() => {
        const bar = document.getElementById('download-progress');
        return !bar.hidden && bar.value > 0 && bar.value < bar.max;
    })()""")
    assert "Downloading the model of" in (web.page.text_content("#download-text") or "")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    web.wait_for_model()
    assert web.page.is_hidden("#download")
    status = web.page.text_content("#model-status") or ""
    assert "just downloaded" in status and ("kB" in status or "MB" in status)
    assert web.errors == []


@pytest.mark.slow
def test_a_metered_connection_asks_before_a_download_over_the_limit(
    chromium: Any, server: str
) -> None:
    context, web = open_context(chromium, server)
    context.add_init_script("""
        Object.defineProperty(navigator, 'connection',
            { value: { saveData: true, effectiveType: '4g' }, configurable: true });
        localStorage.setItem('sightscan.confirmAboveMb', '0');
    """)
    web.open()
    web.page.select_option("#city", CITY)
    web.page.wait_for_function(DOWNLOAD_SHOWN)
    assert "metered" in (web.page.text_content("#download-text") or "")
    web.page.click("#download-no")
    assert web.page.is_hidden("#download")
    assert web.model_downloads == []
    assert web.page.is_disabled("#photo")
    web.page.select_option("#city", "")
    web.page.select_option("#city", CITY)
    web.page.wait_for_function(DOWNLOAD_SHOWN)
    web.page.click("#download-yes")
    web.wait_for_model()
    assert len(web.model_downloads) == 1
    context.close()


@pytest.mark.slow
def test_an_update_is_offered_with_its_size_and_can_be_declined(web: WebPage) -> None:
    web.open()
    web.choose_city()
    pretend_newer_version(web)
    web.page.reload()
    web.page.wait_for_function(DOWNLOAD_SHOWN)
    text = web.page.text_content("#download-text") or ""
    assert "Update available" in text and "v2" in text
    web.page.click("#download-no")
    assert web.page.evaluate(STORED)[0][1] == 1
    web.page.reload()
    web.wait_for_model()
    assert web.page.is_hidden("#download")  # declined: not asked again for v2
    assert len(web.model_downloads) == 1

    web.page.evaluate(f"localStorage.removeItem('sightscan.declined.{CITY}')")
    web.page.reload()
    web.page.wait_for_function(DOWNLOAD_SHOWN)
    web.page.click("#download-yes")
    web.page.wait_for_function("document.getElementById('model-status').textContent.includes('v2')")
    stored = web.page.evaluate(STORED)
    assert [(city, version) for city, version, _ in stored] == [(CITY, 2)]  # v1 evicted
    assert web.errors == []


@pytest.mark.slow
def test_a_cut_download_stores_nothing_and_offers_a_retry(web: WebPage) -> None:
    def half(route: Any) -> None:
        real = route.fetch()
        route.fulfill(response=real, body=real.body()[: len(real.body()) // 2])

    web.open()
    web.page.route("**/model", half)
    web.page.select_option("#city", CITY)
    web.page.wait_for_function(
        DOWNLOAD_SHOWN + " && !document.getElementById('download-yes').hidden")
    text = web.page.text_content("#download-text") or ""
    assert "failed" in text and "Nothing was stored" in text
    assert web.page.text_content("#download-yes") == "Retry"
    assert web.page.evaluate(STORED) == []
    web.page.unroute("**/model")
    web.page.click("#download-yes")
    web.wait_for_model()
    assert [city for city, _, _ in web.page.evaluate(STORED)] == [CITY]


def test_a_model_that_fails_its_format_check_is_refused_and_the_old_one_kept(
    web: WebPage,
) -> None:
    web.open()
    web.choose_city()
    pretend_newer_version(web, body=b"not an onnx model at all" * 100)
    web.page.reload()
    web.page.wait_for_function(DOWNLOAD_SHOWN)
    web.page.click("#download-yes")
    web.page.wait_for_function(
        "document.getElementById('download-text').textContent.includes('refused')")
    assert [(c, v) for c, v, _ in web.page.evaluate(STORED)] == [(CITY, 1)]
    assert not web.page.is_disabled("#photo")  # v1 still detects
    assert web.detect(photo("red disc", 5))["source"] == "photo"


def test_removing_a_stored_model_frees_its_storage(web: WebPage) -> None:
    web.open()
    web.choose_city()
    web.page.wait_for_function("document.querySelectorAll('#stored button').length === 1")
    stored_text = web.page.text_content("#stored") or ""
    assert "v1" in stored_text
    assert int(web.page.get_attribute("#storage-used", "data-model-bytes") or 0) > 0
    assert "This site uses" in (web.page.text_content("#storage-used") or "")
    web.page.click("#stored button")
    web.page.wait_for_function("document.querySelectorAll('#stored button').length === 0")
    assert web.page.get_attribute("#storage-used", "data-model-bytes") == "0"
    assert web.page.evaluate(STORED) == []
    assert web.page.is_disabled("#photo")


def test_a_full_disk_says_how_much_space_the_model_needs(chromium: Any, server: str) -> None:
    context, web = open_context(chromium, server)
    context.add_init_script("""
        IDBObjectStore.prototype.put = function () {
            throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
        };
    """)
    web.open()
    web.choose_city()  # the model still works for this visit
    status = web.page.text_content("#model-status") or ""
    assert "not stored: Not enough storage" in status and "it needs" in status
    assert web.page.evaluate(STORED) == []
    context.close()
