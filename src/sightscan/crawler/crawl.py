"""Crawl one city: discover its sights, download photos concurrently, check, hand to a sink.

Downloads and image checks run on a thread pool of `concurrency` workers; the sink is
always called on the calling thread (it may write to a database session), so it needs no
locking. At most `2 * concurrency` downloads are in flight, which bounds memory.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import islice

from sightscan.crawler.errors import NoSightsFoundError, PhotoTooLargeError
from sightscan.crawler.types import (
    DEFAULT_MAX_PHOTO_BYTES,
    CrawledPhoto,
    PhotoCandidate,
    PhotoSource,
    Sight,
    SightDiscovery,
)
from sightscan.errors import ExternalServiceError, InvalidImageError, InvalidInputError
from sightscan.images import DEFAULT_MAX_PIXELS, inspect_image

log = logging.getLogger(__name__)

Sink = Callable[[CrawledPhoto], bool]


@dataclass(slots=True)
class CrawlReport:
    """What a crawl did: sights found, photos stored, duplicates and skips by reason."""

    city: str
    sights: list[str] = field(default_factory=list)
    discovered: list[Sight] = field(default_factory=list)  # with descriptions and links
    photos_stored: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    stored_per_sight: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def sights_found(self) -> int:
        """Number of sights discovery returned."""
        return len(self.sights)

    @property
    def photos_skipped(self) -> int:
        """Photos dropped for any reason (too large, not an image, download failed...)."""
        return sum(self.skipped.values())


def crawl_city(
    city: str,
    *,
    discovery: SightDiscovery,
    source: PhotoSource,
    sink: Sink,
    max_sights: int,
    max_images_per_sight: int,
    max_photo_bytes: int = DEFAULT_MAX_PHOTO_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    concurrency: int = 4,
) -> CrawlReport:
    """Discover up to `max_sights` sights of `city` and feed checked photos of each to `sink`.

    `sink` returns True when it stored the photo, False for a duplicate. Raises
    NoSightsFoundError when discovery finds nothing, ExternalServiceError when discovery fails
    or every sight's photo listing failed and nothing was stored.
    """
    if max_sights < 1 or max_images_per_sight < 1 or concurrency < 1 or max_photo_bytes < 1:
        raise InvalidInputError(
            "expected max_sights, max_images_per_sight, concurrency and max_photo_bytes >= 1"
        )
    sights = discovery.find_sights(city, max_sights)[:max_sights]
    if not sights:
        raise NoSightsFoundError(f"no sights found for {city}")
    report = CrawlReport(city=city, sights=[s.name for s in sights], discovered=list(sights))
    last_error: ExternalServiceError | None = None
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="crawl") as pool:
        pending: set[Future[_Outcome]] = set()
        for sight in sights:
            try:
                candidates = source.photos_for(sight, city, max_images_per_sight)
                for candidate in islice(candidates, max_images_per_sight):
                    if len(pending) >= 2 * concurrency:
                        pending = _drain(pending, report, sink)
                    pending.add(
                        pool.submit(
                            _fetch_and_check, city, sight, candidate, max_photo_bytes, max_pixels
                        )
                    )
            except ExternalServiceError as exc:
                last_error = exc
                report.errors.append(f"{sight.name}: {exc}")
                report.skipped["source_failed"] += 1
                log.warning("crawl %s: listing photos of %s failed: %s", city, sight.name, exc)
        while pending:
            pending = _drain(pending, report, sink)
    if (
        last_error is not None
        and len(report.errors) == len(sights)
        and not (report.photos_stored or report.duplicates)
    ):
        raise last_error
    log.info(
        "crawl %s: %d sights, %d stored, %d duplicates, skipped %s",
        city,
        report.sights_found,
        report.photos_stored,
        report.duplicates,
        dict(report.skipped),
    )
    return report


@dataclass(frozen=True, slots=True)
class _Outcome:
    photo: CrawledPhoto | None
    skip_reason: str | None = None


def _fetch_and_check(
    city: str, sight: Sight, candidate: PhotoCandidate, max_bytes: int, max_pixels: int
) -> _Outcome:
    """Runs on a worker: download with the cap, decode-check, never raise for one photo."""
    try:
        data = candidate.fetch(max_bytes)
    except PhotoTooLargeError:
        return _Outcome(None, "too_large")
    except InvalidImageError:
        return _Outcome(None, "not_an_image")
    except (ExternalServiceError, OSError) as exc:
        log.info("download of a %s photo failed: %s", sight.name, exc)
        return _Outcome(None, "download_failed")
    try:
        info = inspect_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    except InvalidImageError:
        return _Outcome(None, "invalid_image")
    return _Outcome(
        CrawledPhoto(
            city,
            sight.name,
            data,
            candidate.url,
            candidate.page_url,
            candidate.licence,
            candidate.author,
            info,
        )
    )


def _drain(
    pending: set[Future[_Outcome]], report: CrawlReport, sink: Sink
) -> set[Future[_Outcome]]:
    """Wait for at least one download, hand finished photos to the sink on this thread."""
    done, still_pending = wait(pending, return_when=FIRST_COMPLETED)
    for future in done:
        outcome = future.result()
        if outcome.photo is None:
            report.skipped[outcome.skip_reason or "unknown"] += 1
        elif sink(outcome.photo):
            report.photos_stored += 1
            report.stored_per_sight[outcome.photo.sight] += 1
        else:
            report.duplicates += 1
    return still_pending
