"""The everyday pool: open-licence Commons photos of no city, fetched from the fake Commons
API into the warehouse (SQLite and PostgreSQL), stored once, all or nothing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from fakes.commons import API_PATH, CommonsFile, FakeCommons
from fakes.images import jpeg_bytes
from fakes.server import FakeServer, Reply
from sightscan.config import load_settings
from sightscan.crawler.commons import CommonsPhotoSource
from sightscan.crawler.everyday import EVERYDAY_THUMB_WIDTH, EverydayReport, fetch_everyday_pool
from sightscan.errors import ExternalServiceError
from sightscan.http import make_client
from sightscan.warehouse import Warehouse
from sightscan.warehouse.everyday import everyday_negatives, everyday_pool_size, landmark_photos
from sightscan.warehouse.images import NewImage, add_image
from sightscan.warehouse.models import City, EverydayImage, FactSight, ImageRow

JPEG = {"Content-Type": "image/jpeg"}
FOOD, CATS = "Everyday food", "Everyday cats"
TOWERS = "Quality images of towers"


def colour(n: int) -> tuple[int, int, int]:
    """Colours far enough apart that their JPEGs differ."""
    return (n * 23 % 256, n * 59 % 256, 80)


def photo(n: int, category: str, **kwargs: object) -> CommonsFile:
    """A Commons file of `category` whose thumbnail is a distinct small JPEG."""
    reply = Reply(200, jpeg_bytes(color=colour(n)), JPEG)
    return CommonsFile(f"File:{category} {n}.jpg", "-", reply, category=category,
                       **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """The fake Commons API and upload server on loopback."""
    fake = FakeServer().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(timeout=2.0) as http_client:
        yield http_client


def fetch(warehouse: Warehouse, server: FakeServer, client: httpx.Client,
          limit: int | None = None, categories: str = f"{FOOD}|{CATS}", landmarks: str = ""
          ) -> EverydayReport:
    """The pool fetch with SIGHTSCAN_EVERYDAY_CATEGORIES = `categories` and
    SIGHTSCAN_LANDMARK_CATEGORIES = `landmarks`, retrying fast."""
    warehouse.settings = load_settings(sightscan_data_dir=warehouse.settings.sightscan_data_dir,
                                       sightscan_everyday_categories=categories,
                                       sightscan_landmark_categories=landmarks)
    source = CommonsPhotoSource(client, url=f"{server.url}{API_PATH}", backoff=0.001,
                                max_backoff=0.01, thumb_width=EVERYDAY_THUMB_WIDTH)
    return fetch_everyday_pool(warehouse, limit=limit, source=source)


def pool_rows(warehouse: Warehouse) -> list[tuple[str, str | None, str | None, str]]:
    """(category, licence, author, page) of every pool photo, in id order."""
    with warehouse.transaction() as session:
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(EverydayImage.category, ImageRow.licence, ImageRow.author, ImageRow.page_url)
            .join(ImageRow, ImageRow.id == EverydayImage.image_id).order_by(ImageRow.id))]


def test_only_open_licence_photos_join_the_pool_with_their_credits(
        warehouse: Warehouse, server: FakeServer, client: httpx.Client) -> None:
    FakeCommons(server, [photo(1, FOOD), photo(2, FOOD, licence="CC BY-NC-SA 4.0"),
                         photo(3, FOOD, licence="CC0"), photo(4, CATS, licence="Public domain"),
                         photo(5, CATS, licence="GFDL")])
    report = fetch(warehouse, server, client)
    assert (report.stored, report.duplicates, dict(report.skipped)) == (
        3, 0, {"not_open_licence": 2})
    assert report.pool_size == 3
    page = "https://commons.wikimedia.org/wiki/File:"
    assert sorted(pool_rows(warehouse)) == [
        (CATS, "Public domain", "Jane & Co", f"{page}{CATS} 4.jpg"),
        (FOOD, "CC BY-SA 4.0", "Jane & Co", f"{page}{FOOD} 1.jpg"),
        (FOOD, "CC0", "Jane & Co", f"{page}{FOOD} 3.jpg"),
    ]
    thumbs = {r.path for r in server.requests if r.path.startswith("/thumb/")}
    assert thumbs == {"/thumb/0.jpg", "/thumb/2.jpg", "/thumb/3.jpg"}  # non-free: not fetched
    with warehouse.transaction() as session:  # photos of no city: no city, no city photo
        assert session.scalar(select(func.count()).select_from(FactSight)) == 0
        assert session.scalar(select(func.count()).select_from(City)) == 0
        blobs = list(session.scalars(select(ImageRow.blob_key)))
    assert all(warehouse.blobs.exists(key) for key in blobs)
    listing = server.requests_to(API_PATH)[0]
    assert {k: listing.param(k) for k in ("generator", "gcmtitle", "gcmtype", "iiurlwidth")} == {
        "generator": "categorymembers", "gcmtitle": f"Category:{FOOD}", "gcmtype": "file",
        "iiurlwidth": str(EVERYDAY_THUMB_WIDTH)}


def test_the_same_photo_twice_is_stored_once_and_a_second_fetch_adds_nothing(
        warehouse: Warehouse, server: FakeServer, client: httpx.Client) -> None:
    same = jpeg_bytes(color=(9, 9, 9))
    twins = [photo(1, FOOD), photo(2, CATS)]
    for twin in twins:
        twin.reply = Reply(200, same, JPEG)
    FakeCommons(server, [*twins, photo(3, CATS)])
    first = fetch(warehouse, server, client)
    assert (first.stored, first.duplicates, first.pool_size) == (2, 1, 2)
    again = fetch(warehouse, server, client)
    assert (again.stored, again.duplicates, again.pool_size) == (0, 3, 2)
    with warehouse.transaction() as session:
        assert session.scalar(select(func.count()).select_from(ImageRow)) == 2


def test_the_limit_is_kept_and_spread_over_the_categories(
        warehouse: Warehouse, server: FakeServer, client: httpx.Client) -> None:
    FakeCommons(server, [photo(n, FOOD) for n in range(6)]
                + [photo(10 + n, CATS) for n in range(6)])
    report = fetch(warehouse, server, client, limit=4)
    assert (report.stored, report.pool_size) == (4, 4)
    assert sorted(category for category, *_ in pool_rows(warehouse)) == [CATS, CATS, FOOD, FOOD]
    downloads = [r for r in server.requests if r.path.startswith("/thumb/")]
    assert len(downloads) == 4


def test_a_listing_error_is_one_clear_error_and_stores_nothing(
        warehouse: Warehouse, server: FakeServer, client: httpx.Client) -> None:
    commons = FakeCommons(server, [photo(1, FOOD), photo(2, CATS)])
    commons.failing[f"Category:{CATS}"] = Reply(503, "down", {"Content-Type": "text/plain"})
    with pytest.raises(ExternalServiceError) as error:
        fetch(warehouse, server, client)
    message = str(error.value)
    assert message.startswith(f"cannot list the everyday photos of Category:{CATS}")
    assert "HTTP 503" in message and message.endswith("nothing stored")
    assert "\n" not in message
    with warehouse.transaction() as session:
        assert everyday_pool_size(session) == 0
        assert session.scalar(select(func.count()).select_from(ImageRow)) == 0
    assert not any(r.path.startswith("/thumb/") for r in server.requests)


def test_when_every_download_fails_nothing_is_stored(
        warehouse: Warehouse, server: FakeServer, client: httpx.Client) -> None:
    files = [photo(1, FOOD), photo(2, CATS)]
    for file in files:
        file.reply = Reply(503)
    FakeCommons(server, files)
    with pytest.raises(ExternalServiceError, match="every everyday photo download .* failed"):
        fetch(warehouse, server, client)
    with warehouse.transaction() as session:
        assert everyday_pool_size(session) == 0


def test_a_corrupt_or_failed_photo_is_skipped_and_the_rest_is_stored(
        warehouse: Warehouse, server: FakeServer, client: httpx.Client) -> None:
    files = [photo(1, FOOD), photo(2, FOOD), photo(3, CATS)]
    files[0].reply = Reply(200, jpeg_bytes()[:40], JPEG)  # cut short: not a decodable photo
    files[1].reply = Reply(404)
    FakeCommons(server, files)
    report = fetch(warehouse, server, client)
    assert (report.stored, dict(report.skipped)) == (
        1, {"invalid_image": 1, "download_failed": 1})
    assert [category for category, *_ in pool_rows(warehouse)] == [CATS]


def test_a_photo_stored_for_a_city_never_joins_the_pool(
        warehouse: Warehouse, server: FakeServer, client: httpx.Client) -> None:
    city_photo = photo(1, FOOD)
    FakeCommons(server, [city_photo, photo(2, CATS)])
    with warehouse.transaction() as session:
        add_image(session, warehouse.blobs,
                  NewImage(jpeg_bytes(color=colour(1)), "Alonetown", sight="Old Bridge"))
    report = fetch(warehouse, server, client)
    assert (report.stored, report.duplicates, report.pool_size) == (1, 1, 1)
    assert [category for category, *_ in pool_rows(warehouse)] == [CATS]


def test_negatives_are_spread_evenly_over_the_pool(
        warehouse: Warehouse, server: FakeServer, client: httpx.Client) -> None:
    FakeCommons(server, [photo(n, FOOD) for n in range(6)])
    fetch(warehouse, server, client, categories=FOOD)
    with warehouse.transaction() as session:
        ids = list(session.scalars(select(EverydayImage.image_id).order_by(
            EverydayImage.image_id)))
        picked = everyday_negatives(session, limit=2)
        assert everyday_negatives(session, limit=0) == []
    assert [p.image_id for p in picked] == [ids[0], ids[3]]
    assert warehouse.blobs.get(picked[0].blob_key) == jpeg_bytes(color=colour(0))


def test_landmark_photos_join_the_pool_apart_from_the_everyday_negatives(
        warehouse: Warehouse, server: FakeServer, client: httpx.Client) -> None:
    FakeCommons(server, [photo(n, FOOD) for n in range(4)]
                + [photo(n, TOWERS) for n in range(10, 13)])
    report = fetch(warehouse, server, client, limit=4, categories=FOOD, landmarks=TOWERS)
    assert (report.stored, report.pool_size) == (7, 7)  # `limit` of each kind, at most
    landmark_categories = warehouse.settings.landmark_categories
    assert landmark_categories == (TOWERS,)
    with warehouse.transaction() as session:
        everyday = everyday_negatives(session, limit=10, landmark_categories=landmark_categories)
        towers = landmark_photos(session, limit=10, categories=landmark_categories)
        assert landmark_photos(session, limit=10, categories=()) == []
        assert len(everyday_negatives(session, limit=10)) == 7  # no landmark categories: all
    assert [warehouse.blobs.get(p.blob_key) for p in everyday] == [
        jpeg_bytes(color=colour(n)) for n in range(4)]
    assert [warehouse.blobs.get(p.blob_key) for p in towers] == [
        jpeg_bytes(color=colour(n)) for n in range(10, 13)]
