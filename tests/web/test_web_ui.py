"""The page's features: drop/paste, camera chooser, plain/debug drawing, layout, languages,
city names and requests, sight information."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from web_harness import CITY, INFO_CITY, SERVER_STATE, WebModel, WebPage, open_context, publish
from web_photos import render

DROP = """async ([b64, name, type, kind]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], name, { type }));
    const event = kind === 'drop'
        ? new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true })
        : new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true });
    document.body.dispatchEvent(event);
}"""


def photo(shape: str | None, seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    data: bytes
    data, _ = render(shape, np.random.default_rng(seed), size)
    return data


def a_photo_with_a_sight(web_model: WebModel, size: tuple[int, int] = (320, 240)) -> bytes:
    for seed in range(40):
        data = photo("red disc", seed, size)
        if web_model.detector.detect(data):
            return data
    raise AssertionError("the test model finds nothing in 40 photos")


def send(web: WebPage, data: bytes, name: str, mime: str, kind: str) -> None:
    web.page.evaluate(DROP, [base64.b64encode(data).decode(), name, mime, kind])


def wait_for_detection(web: WebPage, before: int) -> dict[str, Any]:
    web.page.wait_for_function(f"(window.detectionCount ?? 0) > {before}")
    result: dict[str, Any] = web.page.evaluate("window.lastDetections")
    return result


def test_a_dropped_or_pasted_photo_is_detected(web: WebPage, web_model: WebModel) -> None:
    web.open()
    web.choose_city()
    send(web, a_photo_with_a_sight(web_model), "drop.png", "image/png", "drop")
    assert wait_for_detection(web, 0)["detections"]
    send(web, photo("blue square", 3), "paste.png", "image/png", "paste")
    wait_for_detection(web, 1)
    assert web.errors == []


def test_a_dropped_file_that_is_not_a_photo_is_refused_and_nothing_sent(web: WebPage) -> None:
    sent: list[str] = []
    web.page.on("request", lambda r: r.method == "POST" and sent.append(r.url))  # type: ignore[func-returns-value]
    web.open()
    web.choose_city()
    send(web, b"%PDF-1.4 not a photo", "ticket.pdf", "application/pdf", "drop")
    web.page.wait_for_function("document.getElementById('result').classList.contains('error')")
    assert "is not a photo" in (web.page.text_content("#result") or "")
    assert web.page.evaluate("window.detectionCount ?? 0") == 0
    send(web, b"\x89PNG broken", "broken.png", "image/png", "drop")
    web.page.wait_for_function(
        "document.getElementById('result').textContent.includes('could not be read')")
    assert sent == []


def test_the_camera_chooser_lists_the_cameras_and_stops(web: WebPage) -> None:
    web.open()
    web.choose_city()
    web.page.click("#camera")
    web.page.wait_for_function("window.lastDetections?.source === 'camera'")
    options = web.page.eval_on_selector_all("#camera-select option", "els => els.length")
    assert options >= 1 and web.page.is_visible("#camera-select")
    web.page.click("#camera")
    assert web.page.text_content("#camera") == "Start camera"
    assert web.errors == []


def test_without_https_the_camera_says_so_and_the_next_result_clears_it(
    chromium: Any, server: str, web_model: WebModel
) -> None:
    context, web = open_context(chromium, server)
    # What a page served over plain http from another host sees.
    context.add_init_script(
        "Object.defineProperty(navigator, 'mediaDevices', {value: undefined, configurable: true});")
    web.open()
    web.choose_city()
    web.page.click("#camera")
    web.page.wait_for_function("document.getElementById('result').classList.contains('error')")
    assert "secure connection" in (web.page.text_content("#result") or "")
    web.detect(a_photo_with_a_sight(web_model))
    assert not web.page.eval_on_selector("#result", "e => e.classList.contains('error')")
    assert web.errors == []
    context.close()


@pytest.mark.slow
def test_plain_mode_draws_a_dot_and_name_and_debug_mode_box_score_and_log(
    web: WebPage, web_model: WebModel
) -> None:
    # A narrow photo: a label beside the dot would run off the right edge.
    data = a_photo_with_a_sight(web_model, (90, 300))
    web.open()
    web.choose_city()
    result = web.detect(data)
    labels = web.page.evaluate("window.lastLabels")
    names = [d["label"] for d in result["detections"]]
    assert [r["text"] for r in labels["rects"]] == names
    web.page.check("#debug")
    web.detect(data, "again.png")
    labels = web.page.evaluate("window.lastLabels")
    for rect, detection in zip(labels["rects"], result["detections"], strict=True):
        assert rect["text"].endswith(f"{detection['score']:.2f}") or rect["text"].endswith("…")
    for rect in labels["rects"]:
        assert 0 <= rect["x"] and rect["x"] + rect["w"] <= labels["width"] + 0.5
        assert 0 <= rect["y"] and rect["y"] + rect["h"] <= labels["height"] + 0.5
    log = web.page.text_content("#debug-info") or ""
    assert web.page.is_visible("#debug-info")
    assert "threshold" in log and " ms " in log and names[0] in log


@pytest.mark.slow
def test_at_360_px_nothing_scrolls_sideways_and_the_result_is_in_view(
    chromium: Any, server: str, web_model: WebModel
) -> None:
    for viewport in ({"width": 360, "height": 740}, {"width": 390, "height": 844},
                     {"width": 1280, "height": 720}):
        context, web = open_context(chromium, server, viewport=viewport)
        web.open()
        web.choose_city()
        web.detect(a_photo_with_a_sight(web_model, (960, 720)))
        width = web.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], viewport
        box = web.page.eval_on_selector("#result", "e => e.getBoundingClientRect().toJSON()")
        assert web.page.evaluate("window.scrollY") == 0
        assert 0 <= box["top"] and box["bottom"] <= viewport["height"], viewport
        context.close()


def test_the_page_speaks_german_to_a_german_browser_and_switches(
    chromium: Any, server: str
) -> None:
    context, web = open_context(chromium, server, locale="de-DE")
    web.open()
    assert web.page.text_content("#photo-button") == "Foto wählen"
    assert web.page.get_attribute("html", "lang") == "de"
    web.page.select_option("#lang", "en")
    assert web.page.text_content("#photo-button") == "Choose a photo"
    web.page.reload()
    web.page.wait_for_function("document.documentElement.lang === 'en'")
    context.close()


def test_every_control_has_a_label(web: WebPage) -> None:
    web.open()
    unlabelled = web.page.evaluate("""() => [...document.querySelectorAll('input, select')]
        .filter((e) => !e.labels?.length && !e.getAttribute('aria-label'))
        .map((e) => e.id)""")
    assert unlabelled == []


@pytest.mark.slow
def test_city_names_are_shown_nicely_and_the_list_refreshes(
    web: WebPage, web_model: WebModel
) -> None:
    web.open()
    options = dict(web.page.eval_on_selector_all(
        "#city option", "els => els.map((e) => [e.value, e.textContent])"))
    assert options[INFO_CITY] == "Infotown"
    if web.fakes.gazetteer:
        assert options[CITY] == "Shape Town"  # the gazetteer's name
    publish(SERVER_STATE["warehouse"], "LATE ARRIVAL", web_model.onnx, {})
    web.page.wait_for_selector("#city option[value='LATE ARRIVAL']", state="attached")
    assert web.page.text_content("#city option[value='LATE ARRIVAL']") == "Late Arrival"
    uploads = web.page.eval_on_selector_all("#upload-city option", "els => els.map(e => e.value)")
    assert "LATE ARRIVAL" in uploads and "" in uploads  # only cities with a model


@pytest.mark.slow
def test_an_unknown_city_is_refused_with_suggestions_and_a_known_one_shows_progress(
    web: WebPage,
) -> None:
    web.open()
    web.page.fill("#request-city", "Munch")
    web.page.click("#request-form button")
    web.page.wait_for_selector("#suggestions button")
    assert "not a city we know" in (web.page.text_content("#help-result") or "")
    assert "Munich" in web.page.eval_on_selector_all("#suggestions button",
                                                     "els => els.map(e => e.textContent)")
    web.page.click("#suggestions button:text('Munich')")
    web.page.wait_for_selector("#requests li[data-city='MUNICH']")
    if not web.fakes.status:  # the real status route: the test server never starts a crawl
        web.page.wait_for_selector("#requests li[data-stage='requested']")
        assert "waiting for more requests (1 of 3)" in (
            web.page.text_content("#requests li[data-city='MUNICH']") or "")
        return
    web.page.wait_for_selector("#requests li[data-stage='failed']")
    failed = web.page.text_content("#requests li[data-city='MUNICH']") or ""
    assert "failed" in failed and "no photos of its sights were found" in failed
    assert web.fakes.status_calls >= 3  # requested -> crawl -> failed, each shown


def test_the_request_field_autocompletes_from_the_gazetteer(web: WebPage) -> None:
    web.open()
    web.page.fill("#request-city", "Muni")
    web.page.wait_for_selector("#gazetteer option[value='Munich']", state="attached")


def test_the_result_names_each_sight_with_its_description_link_and_credits(
    web: WebPage, web_model: WebModel
) -> None:
    web.open()
    web.choose_city(INFO_CITY)
    web.detect(a_photo_with_a_sight(web_model))
    sights = web.page.text_content("#sights") or ""
    assert "red disc" in sights and "the test city's round landmark" in sights
    assert "Ada Example, CC BY-SA 4.0" in sights
    assert web.page.get_attribute("#sights a", "href") == "https://www.wikidata.org/wiki/Q42"
