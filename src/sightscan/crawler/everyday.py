"""The everyday pool: open-licence photos of everyday scenes from Wikimedia Commons (food,
animals, plants, objects, people, vehicles) that show no sight of any city, and photos of
other places' landmarks (towers, churches, bridges, castles, monuments).

Every city's training takes some everyday scenes as negatives (sightscan.training.service),
so a city alone in its warehouse learns what "no known sight" looks like too; its open-set
gate takes the landmark photos, so that it refuses other places' landmarks. For each kind,
the fetch lists every category first (an API failure stops it with nothing stored), then
downloads the candidates in turn across categories, so the pool is spread over them. Only CC0,
public-domain, CC BY and CC BY-SA files are kept, with author and licence for credits.
Every photo is decode-checked, and the pool is stored in one transaction: a fetch that
fails stores nothing.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import chain, zip_longest

import httpx

from sightscan.crawler.commons import CommonsPhotoSource, is_open_licence
from sightscan.crawler.errors import PhotoTooLargeError
from sightscan.crawler.types import PhotoCandidate
from sightscan.errors import ExternalServiceError, InvalidImageError, InvalidInputError
from sightscan.http import make_client
from sightscan.images import inspect_image
from sightscan.warehouse import Warehouse
from sightscan.warehouse.everyday import EverydayPhoto, add_everyday_photos, everyday_pool_size

log = logging.getLogger(__name__)

EVERYDAY_THUMB_WIDTH = 960  # px: ample for training, which decodes photos at 320 px
LISTING_HEADROOM = 2  # candidates listed per photo wanted from a category: room for skips
CONCURRENCY = 4


@dataclass(slots=True)
class EverydayReport:
    """What a pool fetch did: photos stored (of which landmark photos), already stored,
    skipped by reason, pool size."""

    stored: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    pool_size: int = 0
    landmarks_stored: int = 0

    def summary(self) -> str:
        """One line for people."""
        skipped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in
                            sorted(self.skipped.items()))
        landmarks = (f" ({self.landmarks_stored} of other places' landmarks)"
                     if self.landmarks_stored else "")
        return (f"everyday pool: {self.stored} stored{landmarks}, "
                f"{self.duplicates} already stored, "
                f"{sum(self.skipped.values())} skipped{f' ({skipped})' if skipped else ''}; "
                f"{self.pool_size} photo{'' if self.pool_size == 1 else 's'} in the pool")


@dataclass(frozen=True, slots=True)
class _Listed:
    category: str
    candidate: PhotoCandidate


def _listed(
    source: CommonsPhotoSource, categories: Sequence[str], limit: int, skipped: Counter[str]
) -> list[_Listed]:
    """Open-licence candidates of every category, interleaved (one of each category in turn)."""
    wanted = math.ceil(limit / len(categories)) * LISTING_HEADROOM
    per_category: list[list[_Listed]] = []
    seen: set[str] = set()
    for category in categories:
        found: list[_Listed] = []
        try:
            for candidate in source.category_photos(category, wanted):
                if not is_open_licence(candidate.licence):
                    skipped["not_open_licence"] += 1
                elif candidate.url not in seen:
                    seen.add(candidate.url)
                    found.append(_Listed(category, candidate))
        except ExternalServiceError as exc:
            raise ExternalServiceError(
                f"cannot list the everyday photos of Category:{category} on Wikimedia Commons "
                f"({exc}); nothing stored"
            ) from None
        if not found:
            log.warning("everyday pool: no open-licence photos in Category:%s", category)
        per_category.append(found)
    return [item for item in chain.from_iterable(zip_longest(*per_category)) if item is not None]


def _download(item: _Listed, max_bytes: int, max_pixels: int) -> EverydayPhoto | str:
    """The checked photo, or why it was skipped (runs on a worker thread, never raises)."""
    candidate = item.candidate
    try:
        data = candidate.fetch(max_bytes)
    except PhotoTooLargeError:
        return "too_large"
    except InvalidImageError:
        return "not_an_image"
    except (ExternalServiceError, OSError) as exc:
        log.info("everyday pool: download of %s failed: %s", candidate.url, exc)
        return "download_failed"
    try:
        info = inspect_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    except InvalidImageError:
        return "invalid_image"
    return EverydayPhoto(data, item.category, candidate.url, candidate.licence, candidate.author,
                         candidate.page_url, info)


def collect_everyday_photos(
    source: CommonsPhotoSource,
    categories: Sequence[str],
    limit: int,
    *,
    max_photo_bytes: int,
    max_pixels: int,
    before_each: Callable[[], None] = lambda: None,
) -> tuple[list[EverydayPhoto], Counter[str]]:
    """Up to `limit` checked open-licence photos spread over `categories`, and the skips.

    Raises ExternalServiceError when listing a category fails, or when photos were listed
    but every download failed. `before_each` runs before each download (a stop check).
    """
    if limit < 1 or not categories:
        raise InvalidInputError("expected a limit >= 1 and at least one category")
    skipped: Counter[str] = Counter()
    queue = _listed(source, categories, limit, skipped)
    photos: list[EverydayPhoto] = []
    with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="everyday") as pool:
        while queue and len(photos) < limit:
            size = min(limit - len(photos), 2 * CONCURRENCY)  # a stop check every few photos
            batch, queue = queue[:size], queue[size:]
            before_each()
            outcomes = pool.map(lambda item: _download(item, max_photo_bytes, max_pixels), batch)
            for outcome in outcomes:
                if isinstance(outcome, str):
                    skipped[outcome] += 1
                else:
                    photos.append(outcome)
    if not photos and skipped["download_failed"]:
        raise ExternalServiceError(
            f"every everyday photo download from Wikimedia Commons failed "
            f"({skipped['download_failed']} tried); nothing stored"
        )
    return photos, skipped


def fetch_everyday_pool(
    warehouse: Warehouse,
    *,
    limit: int | None = None,
    client: httpx.Client | None = None,
    source: CommonsPhotoSource | None = None,
    before_each: Callable[[], None] = lambda: None,
) -> EverydayReport:
    """Fetch up to `limit` (default SIGHTSCAN_EVERYDAY_POOL_SIZE) everyday photos from the
    SIGHTSCAN_EVERYDAY_CATEGORIES into the pool, and as many photos of other landmarks from
    the SIGHTSCAN_LANDMARK_CATEGORIES; photos already stored count as duplicates.

    Commons is SIGHTSCAN_COMMONS_URL, asked on `client` (else a client of its own), unless
    a ready `source` is given. Raises ExternalServiceError, with nothing stored, when
    Commons cannot be reached. `before_each` runs before every few downloads (a stop check).
    """
    settings = warehouse.settings
    with ExitStack() as stack:
        if source is None:
            http = client or stack.enter_context(make_client())
            source = CommonsPhotoSource(http, url=settings.sightscan_commons_url,
                                        thumb_width=EVERYDAY_THUMB_WIDTH)
        wanted = settings.sightscan_everyday_pool_size if limit is None else limit
        photos: list[EverydayPhoto] = []
        skipped: Counter[str] = Counter()
        for categories in (settings.everyday_categories, settings.landmark_categories):
            if not categories:
                continue  # no landmark categories: everyday scenes only
            found, skips = collect_everyday_photos(
                source, categories, wanted,
                max_photo_bytes=settings.sightscan_max_upload_bytes,
                max_pixels=settings.sightscan_max_image_pixels,
                before_each=before_each,
            )
            photos += found
            skipped += skips
    with warehouse.transaction() as session:
        added = add_everyday_photos(session, warehouse.blobs, photos,
                                    max_pixels=settings.sightscan_max_image_pixels)
        pool_size = everyday_pool_size(session)
    stored = sum(1 for result in added if result.created)
    landmarks = sum(1 for result, photo in zip(added, photos, strict=True)
                    if result.created and photo.category in settings.landmark_categories)
    report = EverydayReport(stored, len(added) - stored, skipped, pool_size, landmarks)
    log.info("%s", report.summary())
    return report
