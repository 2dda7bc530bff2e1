"""Images and labels: add (deduplicated), label, look up.

Service functions take a Session and do not commit: the caller owns the transaction, so a
batch either lands whole or not at all. Image bytes go to the blob store first; a blob
without a row is harmless (content-addressed, re-used on retry), a row without a blob
cannot happen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from sightscan.detections import Label
from sightscan.errors import InvalidInputError, NotFoundError
from sightscan.images import DEFAULT_MAX_PIXELS, ImageInfo, inspect_image
from sightscan.storage import BlobStore
from sightscan.warehouse._sql import upsert_insert
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.models import (
    FactSight,
    ImageRow,
    LabelRow,
    LoadChange,
    Sight,
    utcnow,
)

ORIGINS = {"crawler", "user", "import"}
LABEL_SOURCES = {"vision", "weak", "user", "import"}


@dataclass(frozen=True, slots=True)
class NewImage:
    """An image arriving in the warehouse, with what is known about it."""

    data: bytes
    city: str
    sight: str | None = None
    source_url: str | None = None
    licence: str | None = None
    author: str | None = None
    page_url: str | None = None
    origin: str = "import"
    labels: Sequence[Label] = field(default_factory=tuple)
    label_source: str = "import"


@dataclass(frozen=True, slots=True)
class AddedImage:
    """The stored image's id and whether this call created it (False: a duplicate)."""

    image_id: int
    created: bool


def _get_or_create_sight(session: Session, city_id: int, name: str, cache: dict[str, int]) -> int:
    name = " ".join(name.split())[:200]
    if name in cache:
        return cache[name]
    sight_id = session.scalar(select(Sight.id).where(Sight.city_id == city_id, Sight.name == name))
    if sight_id is None:
        session.execute(
            upsert_insert(session, Sight.__table__)
            .values(city_id=city_id, name=name)
            .on_conflict_do_nothing(index_elements=["city_id", "name"])
        )
        sight_id = session.scalars(
            select(Sight.id).where(Sight.city_id == city_id, Sight.name == name)
        ).one()
    cache[name] = sight_id
    return sight_id


def _existing_ids(session: Session, shas: list[str], urls: list[str]) -> dict[str, int]:
    """Ids of stored images by sha256 and by source URL (keys 'sha:…' and 'url:…')."""
    if not shas and not urls:
        return {}
    rows = session.execute(
        select(ImageRow.id, ImageRow.sha256, ImageRow.source_url).where(
            or_(ImageRow.sha256.in_(shas), ImageRow.source_url.in_(urls or [""]))
        )
    ).all()
    found: dict[str, int] = {}
    for image_id, sha, url in rows:
        found[f"sha:{sha}"] = image_id
        if url:
            found[f"url:{url}"] = image_id
    return found


def _validate(item: NewImage, max_pixels: int) -> ImageInfo:
    if item.origin not in ORIGINS:
        raise InvalidInputError(f"expected origin in {sorted(ORIGINS)}, got {item.origin!r}")
    if item.label_source not in LABEL_SOURCES:
        raise InvalidInputError(f"expected label source in {sorted(LABEL_SOURCES)}, got {item.label_source!r}")
    if item.source_url is not None and len(item.source_url) > 2000:
        raise InvalidInputError("expected a source URL of at most 2000 characters")
    return inspect_image(item.data, max_pixels=max_pixels)


def add_images(
    session: Session, store: BlobStore, items: Sequence[NewImage], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[AddedImage]:
    """Add images (each stored once); returns one result per item, in order."""
    infos = [_validate(item, max_pixels) for item in items]
    existing = _existing_ids(
        session, [info.sha256 for info in infos], [i.source_url for i in items if i.source_url]
    )
    results: list[AddedImage] = []
    city_ids: dict[str, int] = {}
    sight_caches: dict[int, dict[str, int]] = {}
    for item, info in zip(items, infos, strict=True):
        known = existing.get(f"sha:{info.sha256}") or (
            existing.get(f"url:{item.source_url}") if item.source_url else None
        )
        if known is not None:
            results.append(AddedImage(known, False))
            continue
        if item.city not in city_ids:
            city_ids[item.city] = get_or_create_city(session, item.city).id
        city_id = city_ids[item.city]
        sight_name = item.sight or (item.labels[0].name if item.labels else None)
        sight_id = (
            _get_or_create_sight(session, city_id, sight_name, sight_caches.setdefault(city_id, {}))
            if sight_name
            else None
        )
        blob_key = store.put(item.data)
        image_id = session.execute(
            upsert_insert(session, ImageRow.__table__)
            .values(
                sha256=info.sha256, source_url=item.source_url, blob_key=blob_key,
                mime_type=info.mime_type, size_bytes=info.size_bytes, licence=item.licence,
                author=item.author, page_url=item.page_url,
            )
            .on_conflict_do_nothing()
            .returning(ImageRow.id)
        ).scalar()
        if image_id is None:  # a concurrent writer stored it first
            raced = _existing_ids(session, [info.sha256], [item.source_url] if item.source_url else [])
            results.append(AddedImage(next(iter(raced.values())), False))
            continue
        now = utcnow()
        session.execute(
            insert(FactSight).values(
                image_id=image_id, city_id=city_id, sight_id=sight_id, origin=item.origin,
                width=info.width, height=info.height, created_at=now,
            )
        )
        if item.labels:
            _insert_labels(session, image_id, item.labels, item.label_source)
        session.execute(
            insert(LoadChange).values(kind="image", city_id=city_id, image_id=image_id, created_at=now)
        )
        existing[f"sha:{info.sha256}"] = image_id
        if item.source_url:
            existing[f"url:{item.source_url}"] = image_id
        results.append(AddedImage(image_id, True))
    return results


def add_image(session: Session, store: BlobStore, item: NewImage, *,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> AddedImage:
    """Add one image (stored once); see add_images."""
    return add_images(session, store, [item], max_pixels=max_pixels)[0]


def _insert_labels(session: Session, image_id: int, labels: Sequence[Label], source: str) -> None:
    now = utcnow()
    session.execute(
        insert(LabelRow),
        [
            {
                "image_id": image_id, "source": source, "name": " ".join(label.name.split()),
                "ul_x": label.box.x1 if label.box else None, "ul_y": label.box.y1 if label.box else None,
                "lr_x": label.box.x2 if label.box else None, "lr_y": label.box.y2 if label.box else None,
                "created_at": now,
            }
            for label in labels
        ],
    )


def set_labels(session: Session, *, image_id: int, labels: Sequence[Label], source: str) -> None:
    """Replace the labels one source gave an image (an empty list clears them)."""
    if source not in LABEL_SOURCES:
        raise InvalidInputError(f"expected label source in {sorted(LABEL_SOURCES)}, got {source!r}")
    for label in labels:
        if not isinstance(label, Label):
            raise InvalidInputError(f"expected Label objects, got {type(label).__name__}")
    city_id = session.scalar(select(FactSight.city_id).where(FactSight.image_id == image_id))
    if city_id is None:
        raise NotFoundError(f"no image {image_id}")
    session.execute(delete(LabelRow).where(LabelRow.image_id == image_id, LabelRow.source == source))
    if labels:
        _insert_labels(session, image_id, labels, source)
    session.execute(
        insert(LoadChange).values(kind="labels", city_id=city_id, image_id=image_id, created_at=utcnow())
    )


def labels_of(session: Session, image_id: int) -> list[Label]:
    """Every label of an image, boxes first."""
    from sightscan.detections import Box

    rows = session.scalars(select(LabelRow).where(LabelRow.image_id == image_id).order_by(LabelRow.id))
    labels = [
        Label(row.name, Box(row.ul_x, row.ul_y, row.lr_x, row.lr_y) if row.ul_x is not None else None)  # type: ignore[arg-type]
        for row in rows
    ]
    return sorted(labels, key=lambda label: label.box is None)


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image's integration-layer facts, for labellers."""

    image_id: int
    city_id: int
    sight: str | None
    blob_key: str
    width: int
    height: int


def unlabelled_images(session: Session, *, city_id: int, limit: int) -> list[StoredImage]:
    """Images of a city without any label, oldest first."""
    labelled = select(LabelRow.image_id).where(LabelRow.image_id == FactSight.image_id)
    rows = session.execute(
        select(FactSight.image_id, FactSight.city_id, Sight.name, ImageRow.blob_key,
               FactSight.width, FactSight.height)
        .join(ImageRow, ImageRow.id == FactSight.image_id)
        .outerjoin(Sight, Sight.id == FactSight.sight_id)
        .where(FactSight.city_id == city_id, ~labelled.exists())
        .order_by(FactSight.image_id)
        .limit(limit)
    ).all()
    return [StoredImage(*row) for row in rows]
