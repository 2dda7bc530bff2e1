"""crawl_city end to end: static discovery, fake Commons, size caps, image checks, sink."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from fakes.commons import API_PATH, CommonsFile, FakeCommons
from fakes.images import jpeg_bytes
from fakes.server import FakeServer, Reply
from sightscan.config import load_settings
from sightscan.crawler import (
    CrawledPhoto,
    NoSightsFoundError,
    crawl_city,
    make_discovery,
    make_photo_source,
)
from sightscan.crawler.commons import CommonsPhotoSource
from sightscan.crawler.factory import CrawlerConfig
from sightscan.crawler.folder import FolderSource
from sightscan.crawler.osm import OverpassDiscovery
from sightscan.crawler.static import StaticDiscovery
from sightscan.errors import ConfigurationError, ExternalServiceError
from sightscan.images import sha256_hex

JPEG = {"Content-Type": "image/jpeg"}


class MemorySink:
    """Stores by content hash like the warehouse; remembers the threads it ran on."""

    def __init__(self) -> None:
        self.photos: dict[str, CrawledPhoto] = {}
        self.threads: set[int] = set()

    def __call__(self, photo: CrawledPhoto) -> bool:
        self.threads.add(threading.get_ident())
        key = sha256_hex(photo.data)
        if key in self.photos:
            return False
        self.photos[key] = photo
        return True


def commons_source(server: FakeServer, client: httpx.Client) -> CommonsPhotoSource:
    return CommonsPhotoSource(client, url=f"{server.url}{API_PATH}", retries=1, backoff=0.001,
                              max_backoff=0.01)


def file(title: str, sight: str, reply: Reply) -> CommonsFile:
    return CommonsFile(title, sight, reply)


def test_good_photos_are_stored_and_bad_ones_skipped_with_reasons(
        fake_server: FakeServer, client: httpx.Client) -> None:
    good = jpeg_bytes(color=(1, 2, 3))
    FakeCommons(fake_server, [
        file("File:A.jpg", "Reichstag", Reply(200, good, JPEG)),
        file("File:B.jpg", "Reichstag", Reply(200, good, JPEG)),  # same bytes: duplicate
        file("File:C.jpg", "Reichstag", Reply(200, "<html>Please log in</html>")),
        file("File:D.jpg", "Reichstag", Reply(200, b"\xff" * 200_000, JPEG)),  # 200 kB
        file("File:E.jpg", "Reichstag", Reply(200, good[: len(good) // 2], JPEG)),  # truncated
        file("File:F.jpg", "Reichstag", Reply(500)),
        file("File:G.jpg", "TV Tower", Reply(200, jpeg_bytes(color=(9, 9, 9)), JPEG)),
    ])
    sink = MemorySink()
    report = crawl_city("Berlin", discovery=StaticDiscovery(["Reichstag", "TV Tower"]),
                        source=commons_source(fake_server, client), sink=sink, max_sights=5,
                        max_images_per_sight=10, max_photo_bytes=100_000, concurrency=3)
    assert report.sights == ["Reichstag", "TV Tower"]
    assert report.photos_stored == 2
    assert report.duplicates == 1
    assert dict(report.skipped) == {"not_an_image": 1, "too_large": 1, "invalid_image": 1,
                                    "download_failed": 1}
    stored = {p.sight: p for p in sink.photos.values()}
    assert stored["Reichstag"].licence == "CC BY-SA 4.0"
    assert stored["Reichstag"].city == "Berlin"
    assert stored["TV Tower"].page_url == "https://commons.wikimedia.org/wiki/File:G.jpg"


def test_the_sink_runs_on_the_calling_thread(tmp_path: Path) -> None:
    for n in range(6):
        (tmp_path / "Reichstag").mkdir(exist_ok=True)
        (tmp_path / "Reichstag" / f"{n}.jpg").write_bytes(jpeg_bytes(color=(n, n, n)))
    folder = FolderSource(tmp_path)
    sink = MemorySink()
    report = crawl_city("Berlin", discovery=folder, source=folder, sink=sink, max_sights=3,
                        max_images_per_sight=4, concurrency=2)
    assert report.photos_stored == 4
    assert sink.threads == {threading.get_ident()}


def test_a_city_without_sights_raises_no_sights_found() -> None:
    with pytest.raises(NoSightsFoundError, match="Atlantis"):
        crawl_city("Atlantis", discovery=StaticDiscovery({"Berlin": ["Reichstag"]}),
                   source=StaticSourceNeverCalled(), sink=MemorySink(), max_sights=3,
                   max_images_per_sight=3)


class StaticSourceNeverCalled:
    def photos_for(self, sight, city, limit):  # type: ignore[no-untyped-def]
        raise AssertionError("no sight, no photos")


def test_a_failing_source_for_every_sight_raises(fake_server: FakeServer,
                                                 client: httpx.Client) -> None:
    fake_server.route("GET", API_PATH, Reply(503))
    with pytest.raises(ExternalServiceError, match="Wikimedia Commons failed"):
        crawl_city("Berlin", discovery=StaticDiscovery(["Reichstag", "TV Tower"]),
                   source=commons_source(fake_server, client), sink=MemorySink(),
                   max_sights=2, max_images_per_sight=2)


def test_one_failing_sight_does_not_stop_the_others(fake_server: FakeServer,
                                                    client: httpx.Client) -> None:
    commons = FakeCommons(fake_server, [
        file("File:G.jpg", "TV Tower", Reply(200, jpeg_bytes(), JPEG))])
    commons.errors.append(Reply(200, {"error": {"code": "readonly", "info": "read-only"}}))
    report = crawl_city("Berlin", discovery=StaticDiscovery(["Reichstag", "TV Tower"]),
                        source=commons_source(fake_server, client), sink=MemorySink(),
                        max_sights=2, max_images_per_sight=2)
    assert report.photos_stored == 1
    assert report.skipped["source_failed"] == 1
    assert report.errors[0].startswith("Reichstag: Wikimedia Commons API error readonly")


def test_factories_build_providers_from_the_typed_config(client: httpx.Client,
                                                         tmp_path: Path) -> None:
    settings = load_settings(sightscan_discovery="osm", sightscan_photo_source="commons")
    config = CrawlerConfig.from_settings(settings)
    assert config.discovery == ("osm",)
    discovery = make_discovery("osm", client=client, config=config)
    assert isinstance(discovery, OverpassDiscovery)
    source = make_photo_source(config.photo_source, client=client, config=config)
    assert isinstance(source, CommonsPhotoSource)
    assert isinstance(make_discovery("static", sights=["Reichstag"]), StaticDiscovery)
    (tmp_path / "Reichstag").mkdir()
    assert isinstance(make_photo_source("folder", folder=tmp_path), FolderSource)


def test_the_default_discovery_is_places_with_a_key_else_wikidata_then_osm() -> None:
    assert CrawlerConfig.from_settings(load_settings()).discovery == ("wikidata", "osm")
    assert CrawlerConfig.from_settings(load_settings()).photo_source == "commons"
    keyed = CrawlerConfig.from_settings(load_settings(maps_key="k"))
    assert keyed.discovery == ("places", "wikidata", "osm")


@pytest.mark.parametrize("variable, value", [
    ("sightscan_discovery", "wikidta"), ("sightscan_discovery", "auto,osm"),
    ("sightscan_discovery", "places"), ("sightscan_photo_source", "flickr"),
])
def test_a_misspelt_or_incomplete_option_fails_at_start(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError):
        load_settings(**{variable: value})


def test_factories_refuse_unknown_or_incomplete_providers(client: httpx.Client) -> None:
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_DISCOVERY"):
        make_discovery("bing", client=client)
    with pytest.raises(ConfigurationError, match="MAPS_KEY"):
        make_discovery("places", client=client)
    with pytest.raises(ConfigurationError, match="MAPS_KEY"):
        CrawlerConfig(discovery=("places",))
    with pytest.raises(ConfigurationError, match="SIGHTSCAN_PHOTO_SOURCE"):
        make_photo_source("folder")
