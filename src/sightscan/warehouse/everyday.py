"""The everyday pool: photos showing no sight of any city, negatives for every city's training.

Pool photos are ordinary warehouse images (`dim_image`: stored once by content hash and by
source URL, with licence, author and page for credits), listed in `everyday_images` instead
of `fact_sights`: they belong to no city, so no city's marts, lists or labelling see them.
Photos fetched from the landmark categories (SIGHTSCAN_LANDMARK_CATEGORIES) show other
places' landmarks: they are not trained on, only the open-set gate takes them as negatives.
Like every repository function here, these take a Session and do not commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from sightscan.errors import NotFoundError
from sightscan.images import DEFAULT_MAX_PIXELS, ImageInfo, inspect_image, sha256_hex
from sightscan.storage import BlobStore
from sightscan.warehouse._sql import upsert_insert
from sightscan.warehouse.images import AddedImage
from sightscan.warehouse.models import Base, EverydayImage, FactSight, ImageRow, utcnow

_IMAGES = Base.metadata.tables[ImageRow.__tablename__]
_POOL = Base.metadata.tables[EverydayImage.__tablename__]


@dataclass(frozen=True, slots=True)
class EverydayPhoto:
    """A photo arriving in the everyday pool, with its credits."""

    data: bytes
    category: str
    source_url: str | None = None
    licence: str | None = None
    author: str | None = None
    page_url: str | None = None
    info: ImageInfo | None = None  # inspect_image's result on exactly these bytes, when known


@dataclass(frozen=True, slots=True)
class PoolImage:
    """A stored pool photo: its image id and blob key."""

    image_id: int
    blob_key: str


def _checked(photo: EverydayPhoto, max_pixels: int) -> ImageInfo:
    info = photo.info
    if info is not None and info.sha256 == sha256_hex(photo.data):
        if info.width * info.height <= max_pixels:
            return info
    return inspect_image(photo.data, max_pixels=max_pixels)


def add_everyday_photos(
    session: Session,
    store: BlobStore,
    photos: Sequence[EverydayPhoto],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[AddedImage]:
    """Add photos to the pool, each image stored once; one result per photo, in order.

    `created` is False for a photo already in the pool (same bytes or source URL) and for
    one already stored as a city's photo: that one shows a sight, it never joins the pool.
    Every photo is checked before anything is written (InvalidImageError).
    """
    infos = [_checked(photo, max_pixels) for photo in photos]
    results: list[AddedImage] = []
    for photo, info in zip(photos, infos, strict=True):
        image_id = session.execute(
            upsert_insert(session, _IMAGES)
            .values(
                sha256=info.sha256,
                source_url=photo.source_url,
                blob_key=info.sha256,
                mime_type=info.mime_type,
                size_bytes=info.size_bytes,
                licence=photo.licence,
                author=photo.author,
                page_url=photo.page_url,
            )
            .on_conflict_do_nothing()
            .returning(_IMAGES.c.id)
        ).scalar_one_or_none()
        if image_id is not None:
            store.put(photo.data)  # before the caller commits: no row is ever without its blob
        else:
            image_id = _stored_id(session, info.sha256, photo.source_url)
            in_a_city = session.scalar(
                select(FactSight.image_id).where(FactSight.image_id == image_id)
            )
            if in_a_city is not None:
                results.append(AddedImage(image_id, False))
                continue
        added = session.execute(
            upsert_insert(session, _POOL)
            .values(image_id=image_id, category=photo.category[:200], created_at=utcnow())
            .on_conflict_do_nothing()
            .returning(_POOL.c.image_id)
        ).scalar_one_or_none()
        results.append(AddedImage(image_id, added is not None))
    return results


def _stored_id(session: Session, sha256: str, source_url: str | None) -> int:
    """The id of the stored image with these bytes, else with this source URL."""
    rows = session.execute(
        select(ImageRow.id, ImageRow.sha256).where(
            or_(ImageRow.sha256 == sha256, ImageRow.source_url == (source_url or ""))
        )
    ).all()
    if not rows:  # cannot happen: the insert conflicted with a stored row
        raise NotFoundError(f"image {sha256[:12]} was neither stored nor found")
    by_bytes = [image_id for image_id, sha in rows if sha == sha256]
    return (by_bytes or [image_id for image_id, _ in rows])[0]


def everyday_pool_size(session: Session) -> int:
    """Photos in the everyday pool."""
    return session.scalar(select(func.count()).select_from(EverydayImage)) or 0


def everyday_negatives(session: Session, *, limit: int,
                       landmark_categories: Sequence[str] = ()) -> list[PoolImage]:
    """Up to `limit` pool photos of everyday scenes (those of `landmark_categories` left
    out), spread evenly over them (a varied, stable pick)."""
    return _spread(session, limit, EverydayImage.category.not_in(landmark_categories))


def landmark_photos(session: Session, *, limit: int, categories: Sequence[str]
                    ) -> list[PoolImage]:
    """Up to `limit` pool photos of other landmarks (from `categories`), spread evenly."""
    return _spread(session, limit, EverydayImage.category.in_(categories)) if categories else []


def _spread(session: Session, limit: int, where: ColumnElement[bool]) -> list[PoolImage]:
    if limit <= 0:
        return []
    rows = session.execute(
        select(ImageRow.id, ImageRow.blob_key)
        .join(EverydayImage, EverydayImage.image_id == ImageRow.id)
        .where(where)
        .order_by(ImageRow.id)
    ).all()
    step = max(1, len(rows) // limit)
    return [PoolImage(image_id, blob_key) for image_id, blob_key in rows[::step][:limit]]
