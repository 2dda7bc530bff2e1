"""Wikimedia Commons photo source against a fake MediaWiki Action API."""

from __future__ import annotations

import httpx
import pytest

from fakes.commons import API_PATH, CommonsFile, FakeCommons, maxlag_error
from fakes.images import jpeg_bytes
from fakes.server import FakeServer, Reply
from sightscan.crawler.commons import CommonsPhotoSource, strip_html
from sightscan.crawler.types import Sight
from sightscan.errors import ExternalServiceError

GATE = Sight("Brandenburg Gate")
JPEG = {"Content-Type": "image/jpeg"}


def gate_file(n: int, **kwargs: object) -> CommonsFile:
    return CommonsFile(f"File:Gate {n}.jpg", "Brandenburg Gate",
                       Reply(200, jpeg_bytes(color=(n, 0, 0)), JPEG), **kwargs)  # type: ignore[arg-type]


def source(server: FakeServer, client: httpx.Client,
           slept: list[float] | None = None) -> CommonsPhotoSource:
    return CommonsPhotoSource(client, url=f"{server.url}{API_PATH}", backoff=0.001,
                              max_backoff=0.01 if slept is None else 60,
                              sleep=(slept.append if slept is not None else lambda _s: None))


def test_search_results_carry_licence_author_and_page(fake_server: FakeServer,
                                                      client: httpx.Client) -> None:
    FakeCommons(fake_server, [gate_file(1), gate_file(2)])
    photos = list(source(fake_server, client).photos_for(GATE, "Berlin", 5))
    assert [p.url.rsplit("/", 1)[1] for p in photos] == ["0.jpg", "1.jpg"]
    first = photos[0]
    assert first.licence == "CC BY-SA 4.0"
    assert first.author == "Jane & Co"
    assert first.page_url == "https://commons.wikimedia.org/wiki/File:Gate 1.jpg"
    assert first.fetch(1_000_000) == jpeg_bytes(color=(1, 0, 0))


def test_the_search_request_has_the_documented_parameters(fake_server: FakeServer,
                                                          client: httpx.Client) -> None:
    FakeCommons(fake_server, [gate_file(1)])
    list(source(fake_server, client).photos_for(GATE, "Berlin", 5))
    request = fake_server.requests_to(API_PATH)[0]
    expected = {"action": "query", "generator": "search", "gsrnamespace": "6",
                "gsrsearch": "Brandenburg Gate Berlin filetype:bitmap", "gsrlimit": "5",
                "prop": "imageinfo", "iiprop": "url|extmetadata|size|mime",
                "iiurlwidth": "1024", "format": "json", "formatversion": "2"}
    assert {k: request.param(k) for k in expected} == expected
    assert request.param("maxlag") == "5"


def test_continue_is_followed_until_the_limit(fake_server: FakeServer,
                                              client: httpx.Client) -> None:
    commons = FakeCommons(fake_server, [gate_file(n) for n in range(1, 6)])
    commons.page_cap = 2
    photos = list(source(fake_server, client).photos_for(GATE, "Berlin", 5))
    assert len(photos) == 5
    offsets = [r.param("gsroffset") for r in fake_server.requests_to(API_PATH)]
    assert offsets == [None, "2", "4"]


def test_category_members_fill_up_without_repeats(fake_server: FakeServer,
                                                  client: httpx.Client) -> None:
    other = CommonsFile("File:Tor.jpg", "Pariser Platz", Reply(200, jpeg_bytes(), JPEG),
                        category="Brandenburg Gate")
    FakeCommons(fake_server, [gate_file(1, category="Brandenburg Gate"), other])
    photos = list(source(fake_server, client).photos_for(GATE, "Berlin", 5))
    assert len(photos) == 2
    generators = [r.param("generator") for r in fake_server.requests_to(API_PATH)]
    assert generators == ["search", "categorymembers"]
    assert fake_server.requests_to(API_PATH)[1].param("gcmtitle") == "Category:Brandenburg Gate"


def test_files_that_are_not_bitmaps_are_left_out(fake_server: FakeServer,
                                                 client: httpx.Client) -> None:
    FakeCommons(fake_server, [gate_file(1, mime="image/svg+xml"), gate_file(2)])
    photos = list(source(fake_server, client).photos_for(GATE, "Berlin", 5))
    assert len(photos) == 1


def test_an_api_error_is_an_external_service_error(fake_server: FakeServer,
                                                   client: httpx.Client) -> None:
    commons = FakeCommons(fake_server, [gate_file(1)])
    commons.errors.append(Reply(200, {"error": {"code": "internal_api_error_DBQueryError",
                                                "info": "A database query error"}}))
    with pytest.raises(ExternalServiceError,
                       match="API error internal_api_error_DBQueryError: A database"):
        list(source(fake_server, client).photos_for(GATE, "Berlin", 5))


def test_maxlag_waits_for_retry_after_and_retries(fake_server: FakeServer,
                                                  client: httpx.Client) -> None:
    commons = FakeCommons(fake_server, [gate_file(1)])
    commons.errors.append(maxlag_error(retry_after="5"))
    slept: list[float] = []
    photos = list(source(fake_server, client, slept).photos_for(GATE, "Berlin", 5))
    assert len(photos) == 1
    assert slept == [5.0]


def test_persistent_maxlag_gives_up(fake_server: FakeServer, client: httpx.Client) -> None:
    commons = FakeCommons(fake_server, [gate_file(1)])
    commons.errors.extend(maxlag_error() for _ in range(10))
    with pytest.raises(ExternalServiceError, match="maxlag"):
        list(source(fake_server, client).photos_for(GATE, "Berlin", 5))


def test_a_5xx_from_the_api_is_retried(fake_server: FakeServer, client: httpx.Client) -> None:
    commons = FakeCommons(fake_server, [gate_file(1)])
    commons.errors.append(Reply(503, "<html>Wikimedia Error</html>"))
    assert len(list(source(fake_server, client).photos_for(GATE, "Berlin", 5))) == 1


def test_html_is_stripped_from_authors() -> None:
    assert strip_html('<span class="x">A &eacute;b</span>\n<br/>c') == "A éb c"
