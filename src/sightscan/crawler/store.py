"""The crawl stage: crawl a city with the configured providers into the warehouse."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from sightscan.crawler.commons import CommonsPhotoSource
from sightscan.crawler.crawl import crawl_city
from sightscan.crawler.errors import NoSightsFoundError
from sightscan.crawler.everyday import fetch_everyday_pool
from sightscan.crawler.factory import CrawlerConfig, build_discovery, make_photo_source
from sightscan.crawler.folder import FolderSource
from sightscan.crawler.types import CrawledPhoto, PhotoSource
from sightscan.errors import ExternalServiceError
from sightscan.http import make_client
from sightscan.pipeline import FollowUp, Stage, StageResult, StageRun
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import city_request, find_city
from sightscan.warehouse.everyday import everyday_pool_size
from sightscan.warehouse.images import NewImage, add_image
from sightscan.warehouse.marts import refresh_marts
from sightscan.warehouse.sights import SightInfo, keep_sight_info

log = logging.getLogger(__name__)


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
    """Crawl `city`: its request's photo folder or sights list when an operator gave one,
    else the configured discovery chain and photo source (CrawlerConfig)."""
    settings = warehouse.settings
    config = CrawlerConfig.from_settings(settings)
    city = run.city
    with warehouse.transaction() as session:
        request = city_request(session, find_city(session, city).id)
        folder = request.photo_folder if request else None
        sights = request.sights if request else None
    if not folder and sights is not None and not sights:
        raise NoSightsFoundError(
            f"no sights known for {city}: the request's sights list is empty; give sights "
            "or a photo folder, or leave both out to use SIGHTSCAN_DISCOVERY"
        )
    with make_client() as client:
        discovery = build_discovery(
            config,
            client=client,
            display_name=_display_name(city) if not folder and sights is None else None,
            sights=sights,
            folder=Path(folder) if folder else None,
        )
        source: PhotoSource
        if folder:
            source = FolderSource(Path(folder))
        else:
            source = make_photo_source(config.photo_source, client=client, config=config)
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
        everyday = (
            _everyday_pool_once(warehouse, client, run.check_stop)
            if settings.sightscan_everyday_auto_fetch and isinstance(source, CommonsPhotoSource)
            else None
        )
    with warehouse.transaction() as session:
        keep_sight_info(
            session, city, (SightInfo(s.name, s.description, s.url) for s in report.discovered)
        )
        refresh_marts(session)
    counts: dict[str, Any] = {
        "sights": report.sights_found,
        "stored": report.photos_stored,
        "duplicates": report.duplicates,
        "skipped": report.photos_skipped,
    }
    if everyday is not None:
        counts["everyday_stored"] = everyday
    if report.photos_stored or report.duplicates:
        return StageResult(counts, FollowUp(Stage.LABEL, {"mode": "new"}))
    return StageResult(counts)


def _everyday_pool_once(
    warehouse: Warehouse, client: httpx.Client, check_stop: Callable[[], None]
) -> int | None:
    """Fill the everyday pool while it is empty (SIGHTSCAN_EVERYDAY_AUTO_FETCH), after a
    crawl that reached the network; photos stored, None when the pool was already there.
    A failure is logged, never the crawl's: the city trains without the pool."""
    with warehouse.transaction() as session:
        if everyday_pool_size(session):
            return None
    try:
        return fetch_everyday_pool(warehouse, client=client, before_each=check_stop).stored
    except ExternalServiceError as exc:
        log.warning("everyday pool not fetched, training goes on without it: %s", exc)
        return 0


def _display_name(city: str) -> str:
    """What providers search for: the gazetteer's name of the city key, else the key in
    title case (Wikidata matches English labels exactly: "Munich", not "MUNICH")."""
    from sightscan.gazetteer import get_gazetteer

    known = get_gazetteer().lookup(city)
    return known.name if known is not None and known.key == city else city.title()
