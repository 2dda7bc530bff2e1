"""The crawl stage: crawl a city with the configured providers into the warehouse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sightscan.crawler.crawl import crawl_city
from sightscan.crawler.errors import NoSightsFoundError
from sightscan.crawler.factory import make_discovery, make_photo_source
from sightscan.crawler.folder import FolderSource
from sightscan.crawler.types import CrawledPhoto, PhotoSource, SightDiscovery
from sightscan.http import make_client
from sightscan.pipeline import FollowUp, Stage, StageResult, StageRun
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import city_request, find_city
from sightscan.warehouse.images import NewImage, add_image
from sightscan.warehouse.marts import refresh_marts


def warehouse_sink(
    warehouse: Warehouse, before_each: Callable[[], None] = lambda: None
) -> Callable[[CrawledPhoto], bool]:
    """Store each crawled photo in its own transaction (as a crawler writes); True when new.

    `before_each` runs before every photo (the crawl stage checks its stop flag there).
    """

    def sink(photo: CrawledPhoto) -> bool:
        before_each()
        with warehouse.transaction() as session:
            return add_image(
                session,
                warehouse.blobs,
                NewImage(
                    data=photo.data,
                    city=photo.city,
                    sight=photo.sight,
                    source_url=photo.url,
                    licence=photo.licence,
                    author=photo.author,
                    page_url=photo.page_url,
                    origin="crawler",
                    info=photo.info,
                ),
                max_pixels=warehouse.settings.sightscan_max_image_pixels,
            ).created

    return sink


def run_crawl_stage(warehouse: Warehouse, run: StageRun) -> StageResult:
    """Crawl `city` (its request's photo folder or sights list, else the configured providers)."""
    settings = warehouse.settings
    city = run.city
    with warehouse.transaction() as session:
        request = city_request(session, find_city(session, city).id)
        folder = request.photo_folder if request else None
        sights = request.sights if request else None
    if not folder and not sights and settings.sightscan_discovery == "static":
        raise NoSightsFoundError(
            f"no sights known for {city}: an operator can give sights or a photo folder with "
            "the request, or set SIGHTSCAN_DISCOVERY=osm or places"
        )
    with make_client() as client:
        discovery: SightDiscovery
        source: PhotoSource
        if folder:
            discovery = source = FolderSource(Path(folder))
        else:
            provider_settings = settings.model_dump()
            provider_settings.pop("maps_key")
            discovery = make_discovery(
                settings.sightscan_discovery,
                client=client,
                sights=sights,
                maps_key=settings.maps_key,
                **provider_settings,
            )
            source = make_photo_source(
                settings.sightscan_photo_source, client=client, **provider_settings
            )
        report = crawl_city(
            city,
            discovery=discovery,
            source=source,
            sink=warehouse_sink(warehouse, run.check_stop),
            max_sights=settings.max_sights_per_city,
            max_images_per_sight=settings.max_images_per_sight,
            max_photo_bytes=settings.sightscan_max_upload_bytes,
            max_pixels=settings.sightscan_max_image_pixels,
        )
    with warehouse.transaction() as session:
        refresh_marts(session)
    counts: dict[str, Any] = {
        "sights": report.sights_found,
        "stored": report.photos_stored,
        "duplicates": report.duplicates,
        "skipped": report.photos_skipped,
    }
    if report.photos_stored or report.duplicates:
        return StageResult(counts, FollowUp(Stage.LABEL, {"mode": "new"}))
    return StageResult(counts)
