"""Images and labels: add (deduplicated), label, look up.

Service functions take a Session and do not commit: the caller owns the transaction, so a
batch either lands whole or not at all. Image bytes are written to the blob store before
the caller commits: a committed row always has its blob; a blob left by a rolled-back
transaction is harmless (content-addressed, re-used on retry).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import (
    Executable,
    Select,
    String,
    Table,
    bindparam,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from sightscan.cities import normalise_city
from sightscan.detections import Box, Label
from sightscan.errors import InvalidInputError, NotFoundError
from sightscan.images import DEFAULT_MAX_PIXELS, ImageInfo, inspect_image, sha256_hex
from sightscan.storage import BlobStore
from sightscan.warehouse._sql import upsert_insert
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.models import (
    Base,
    City,
    FactSight,
    ImageRow,
    LabellingLog,
    LabelRow,
    LoadChange,
    Sight,
    utcnow,
)

ORIGINS = {"crawler", "user", "import"}
LABEL_SOURCES = {"vision", "weak", "user", "import"}
IMAGE_ROWS_PER_STATEMENT = 1000  # 8 parameters a row: well under SQLite's 32,766


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
    # The result of images.inspect_image on exactly these bytes, when the caller has just
    # checked them (crawler, importer): the warehouse then skips decoding them again.
    info: ImageInfo | None = None


@dataclass(frozen=True, slots=True)
class AddedImage:
    """The stored image's id and whether this call created it (False: a duplicate)."""

    image_id: int
    created: bool


def _city_and_sight_ids(
    session: Session, city: str, sight_names: set[str]
) -> tuple[int, dict[str, int]]:
    """The city's id and its sights' ids by name, created when new (one query when all exist)."""
    normalised = normalise_city(city)
    condition = Sight.city_id == City.id
    condition &= Sight.name.in_(sorted(sight_names)) if sight_names else false()
    rows = session.execute(
        select(City.id, Sight.id, Sight.name)
        .outerjoin(Sight, condition)
        .where(City.name == normalised)
    ).all()
    city_id = rows[0][0] if rows else get_or_create_city(session, normalised).id
    sights = {name: sight_id for _, sight_id, name in rows if sight_id is not None}
    missing = sorted(sight_names - sights.keys())
    if missing:
        session.execute(
            upsert_insert(session, _table(Sight))
            .values([{"city_id": city_id, "name": name} for name in missing])
            .on_conflict_do_nothing(index_elements=["city_id", "name"])
        )
        sights.update(
            session.execute(
                select(Sight.name, Sight.id).where(
                    Sight.city_id == city_id, Sight.name.in_(missing)
                )
            ).all()
        )
    return city_id, sights


def _table(model: type[Base]) -> Table:
    """The Core table of a model: Core inserts skip the ORM's per-row bookkeeping."""
    return Base.metadata.tables[model.__tablename__]


def _sight_name(item: NewImage) -> str | None:
    name = item.sight or (item.labels[0].name if item.labels else None)
    return " ".join(name.split())[:200] or None if name else None


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


T = TypeVar("T")
R = TypeVar("R")
PARALLEL_FROM = 8  # items; below this a thread pool costs more than it saves


def _in_parallel(func: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """Map in threads for batches: image decoding and file writes release the GIL."""
    if len(items) < PARALLEL_FROM:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1)) as pool:
        return list(pool.map(func, items))


def _validate(item: NewImage, max_pixels: int) -> ImageInfo:
    if item.origin not in ORIGINS:
        raise InvalidInputError(f"expected origin in {sorted(ORIGINS)}, got {item.origin!r}")
    if item.label_source not in LABEL_SOURCES:
        raise InvalidInputError(
            f"expected label source in {sorted(LABEL_SOURCES)}, got {item.label_source!r}"
        )
    if item.source_url is not None and len(item.source_url) > 2000:
        raise InvalidInputError("expected a source URL of at most 2000 characters")
    if item.info is not None and item.info.sha256 == sha256_hex(item.data):
        if item.info.width * item.info.height <= max_pixels:
            return item.info
    return inspect_image(item.data, max_pixels=max_pixels)


def add_images(
    session: Session,
    store: BlobStore,
    items: Sequence[NewImage],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    durable: bool | None = None,
) -> list[AddedImage]:
    """Add images (each stored once); returns one result per item, in order.

    Every item is checked before anything is written. The rows of the whole batch are
    written with a handful of multi-row statements, whatever the batch size.
    `durable=None` lets PostgreSQL commit crawler and import batches asynchronously
    (re-fetchable data: a server crash may lose the last few hundred milliseconds of them,
    never consistency); user uploads, or `durable=True`, always wait for the WAL flush.
    """
    infos = _in_parallel(lambda item: _validate(item, max_pixels), items)
    if not items:
        return []
    if durable is None:
        durable = any(item.origin == "user" for item in items)
    # Within the batch: the first item of each content hash / source URL is a candidate.
    first_of: dict[str, int] = {}
    candidates: list[int] = []
    duplicate_of: dict[int, int] = {}
    for position, (item, info) in enumerate(zip(items, infos, strict=True)):
        keys = [f"sha:{info.sha256}"] + ([f"url:{item.source_url}"] if item.source_url else [])
        earlier = next((first_of[k] for k in keys if k in first_of), None)
        if earlier is not None:
            duplicate_of[position] = earlier
            continue
        first_of.update((k, position) for k in keys)
        candidates.append(position)
    # Insert the candidates straight away (ON CONFLICT DO NOTHING): what already exists is
    # simply not inserted, and only those few are looked up afterwards. New images, the
    # common case, cost no lookup round trip.
    inserted = _insert_new(session, store, [(items[p], infos[p]) for p in candidates], durable)
    missing = [p for p in candidates if infos[p].sha256 not in inserted]
    existing = _existing_ids(
        session,
        [infos[p].sha256 for p in missing],
        [u for p in missing if (u := items[p].source_url)],
    )
    results: list[AddedImage] = []
    for position, (item, info) in enumerate(zip(items, infos, strict=True)):
        if position in duplicate_of:
            results.append(AddedImage(results[duplicate_of[position]].image_id, False))
        elif info.sha256 in inserted:
            results.append(AddedImage(inserted[info.sha256], True))
        else:
            found = existing.get(f"sha:{info.sha256}")
            if found is None and item.source_url:
                found = existing.get(f"url:{item.source_url}")
            if found is None:  # cannot happen: the insert conflicted with a stored row
                raise NotFoundError(f"image {info.sha256[:12]} was neither stored nor found")
            results.append(AddedImage(found, False))
    return results


def _insert_new(
    session: Session, store: BlobStore, new: list[tuple[NewImage, ImageInfo]], durable: bool
) -> dict[str, int]:
    """Write blobs and rows of images not stored yet; their ids by sha256."""
    sights_by_city: dict[str, set[str]] = {}
    for item, _ in new:
        names = sights_by_city.setdefault(item.city, set())
        if (sight := _sight_name(item)) is not None:
            names.add(sight)
    ids = {
        city: _city_and_sight_ids(session, city, names) for city, names in sights_by_city.items()
    }
    if session.get_bind().dialect.name == "postgresql":
        inserted = _insert_new_postgresql(session, new, ids, durable)
    else:
        inserted = _insert_new_sqlite(session, new, ids)
    # Bytes of the rows just inserted, before the caller commits: no committed row is ever
    # without its blob, and a duplicate (by URL, with other bytes) leaves no orphan blob.
    _in_parallel(store.put, [item.data for item, info in new if info.sha256 in inserted])
    return inserted


def _insert_new_sqlite(
    session: Session,
    new: list[tuple[NewImage, ImageInfo]],
    ids: dict[str, tuple[int, dict[str, int]]],
) -> dict[str, int]:
    inserted: dict[str, int] = {}
    for start in range(0, len(new), IMAGE_ROWS_PER_STATEMENT):
        rows = session.execute(
            upsert_insert(session, _table(ImageRow))
            .values(
                [
                    {
                        "sha256": info.sha256,
                        "source_url": item.source_url,
                        "blob_key": info.sha256,
                        "mime_type": info.mime_type,
                        "size_bytes": info.size_bytes,
                        "licence": item.licence,
                        "author": item.author,
                        "page_url": item.page_url,
                    }
                    for item, info in new[start : start + IMAGE_ROWS_PER_STATEMENT]
                ]
            )
            .on_conflict_do_nothing()
            .returning(_table(ImageRow).c.id, _table(ImageRow).c.sha256)
        ).all()
        inserted.update((sha, image_id) for image_id, sha in rows)
    now = utcnow()
    facts, labels, changes = [], [], []
    for item, info in new:
        image_id = inserted.get(info.sha256)
        if image_id is None:
            continue
        city_id, sight_ids = ids[item.city]
        sight = _sight_name(item)
        facts.append(
            {
                "image_id": image_id,
                "city_id": city_id,
                "sight_id": sight_ids[sight] if sight else None,
                "origin": item.origin,
                "width": info.width,
                "height": info.height,
                "created_at": now,
            }
        )
        labels.extend(_label_rows(image_id, item.labels, item.label_source, now))
        changes.append(
            {
                "kind": "image",
                "city_id": city_id,
                "image_id": image_id,
                "refreshed": False,
                "created_at": now,
            }
        )
    for table, values in ((FactSight, facts), (LabelRow, labels), (LoadChange, changes)):
        if values:
            session.execute(insert(_table(table)), values)
    return inserted


# The arrays of one batch, by name, and the table column whose type each array carries.
_ARRIVAL_COLUMNS = (
    ("sha256", ImageRow.sha256), ("source_url", ImageRow.source_url),
    ("mime_type", ImageRow.mime_type), ("size_bytes", ImageRow.size_bytes),
    ("licence", ImageRow.licence), ("author", ImageRow.author), ("page_url", ImageRow.page_url),
    ("city_id", FactSight.city_id), ("sight_id", FactSight.sight_id),
    ("origin", FactSight.origin), ("width", FactSight.width), ("height", FactSight.height),
)
_LABEL_COLUMNS = (
    ("label_sha256", ImageRow.sha256), ("label_source", LabelRow.source),
    ("label_name", LabelRow.name), ("ul_x", LabelRow.ul_x), ("ul_y", LabelRow.ul_y),
    ("lr_x", LabelRow.lr_x), ("lr_y", LabelRow.lr_y),
)


def _unnest(columns: tuple[tuple[str, Any], ...], alias: str) -> Any:
    """`unnest(:a, :b, ...) AS alias(a, b, ...)`: one typed array parameter per column."""
    arrays = [bindparam(name, type_=postgresql.ARRAY(_unbounded(column.type)))
              for name, column in columns]
    names = [name for name, _ in columns]
    return func.unnest(*arrays).table_valued(*names).render_derived(name=alias)


def _unbounded(column_type: Any) -> Any:
    """The array element type: a VARCHAR without length, since casting to VARCHAR(n) would
    cut long values silently where the INSERT refuses them."""
    return String() if isinstance(column_type, String) else column_type


@cache
def _pg_insert_images() -> Executable:
    """One statement for every row of a batch on PostgreSQL, names taken from the models.

    Arrays in, data-modifying CTEs, so the cost is one round trip whatever the batch size.
    """
    image, fact, change, label = (_table(m) for m in (ImageRow, FactSight, LoadChange, LabelRow))
    now = bindparam("now", type_=fact.c.created_at.type)
    arrivals = select(_unnest(_ARRIVAL_COLUMNS, "a")).cte("arrivals")
    a = arrivals.c
    image_columns = ["sha256", "source_url", "blob_key", "mime_type", "size_bytes", "licence",
                     "author", "page_url"]
    new_images = (
        postgresql.insert(image)
        .from_select(
            [image.c[name] for name in image_columns],
            select(a.sha256, a.source_url, a.sha256.label("blob_key"), a.mime_type,
                   a.size_bytes, a.licence, a.author, a.page_url),
        )
        .on_conflict_do_nothing()
        .returning(image.c.id, image.c.sha256)
        .cte("new_images")
    )
    n = new_images.c
    arrived = select().select_from(new_images).join(arrivals, a.sha256 == n.sha256)
    facts = insert(fact).from_select(
        [fact.c.image_id, fact.c.city_id, fact.c.sight_id, fact.c.origin, fact.c.width,
         fact.c.height, fact.c.created_at],
        arrived.add_columns(n.id, a.city_id, a.sight_id, a.origin, a.width, a.height, now),
    ).cte("facts")
    changes = insert(change).from_select(
        [change.c.kind, change.c.city_id, change.c.image_id, change.c.refreshed,
         change.c.created_at],
        arrived.add_columns(literal("image", change.c.kind.type), a.city_id, n.id, false(), now),
    ).cte("changes")
    labels = _unnest(_LABEL_COLUMNS, "l")
    new_labels = insert(label).from_select(
        [label.c.image_id, label.c.source, label.c.name, label.c.ul_x, label.c.ul_y,
         label.c.lr_x, label.c.lr_y, label.c.created_at],
        select(n.id, labels.c.label_source, labels.c.label_name, labels.c.ul_x, labels.c.ul_y,
               labels.c.lr_x, labels.c.lr_y, now)
        .select_from(new_images)
        .join(labels, labels.c.label_sha256 == n.sha256),
    ).cte("new_labels")
    # set_config(..., true) is local to this transaction and read at COMMIT.
    sync = select(
        func.set_config(literal("synchronous_commit"), bindparam("sync", type_=String), true())
        .label("sync")
    ).subquery("s")
    return (
        select(n.id, n.sha256, sync.c.sync)
        .select_from(new_images)
        .join(sync, true())
        .add_cte(facts, changes, new_labels)
    )


def _insert_new_postgresql(
    session: Session,
    new: list[tuple[NewImage, ImageInfo]],
    ids: dict[str, tuple[int, dict[str, int]]],
    durable: bool,
) -> dict[str, int]:
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "sha256",
            "source_url",
            "mime_type",
            "size_bytes",
            "licence",
            "author",
            "page_url",
            "city_id",
            "sight_id",
            "origin",
            "width",
            "height",
            "label_sha256",
            "label_source",
            "label_name",
            "ul_x",
            "ul_y",
            "lr_x",
            "lr_y",
        )
    }
    for item, info in new:
        city_id, sight_ids = ids[item.city]
        sight = _sight_name(item)
        image_fields: tuple[tuple[str, Any], ...] = (
            ("sha256", info.sha256),
            ("source_url", item.source_url),
            ("mime_type", info.mime_type),
            ("size_bytes", info.size_bytes),
            ("licence", item.licence),
            ("author", item.author),
            ("page_url", item.page_url),
            ("city_id", city_id),
            ("sight_id", sight_ids[sight] if sight else None),
            ("origin", item.origin),
            ("width", info.width),
            ("height", info.height),
        )
        for name, value in image_fields:
            columns[name].append(value)
        for label in item.labels:
            box = label.box
            label_fields: tuple[tuple[str, Any], ...] = (
                ("label_sha256", info.sha256),
                ("label_source", item.label_source),
                ("label_name", " ".join(label.name.split())),
                ("ul_x", box.x1 if box else None),
                ("ul_y", box.y1 if box else None),
                ("lr_x", box.x2 if box else None),
                ("lr_y", box.y2 if box else None),
            )
            for name, value in label_fields:
                columns[name].append(value)
    # Crawled and imported images are re-fetchable: their commit need not wait for the WAL
    # flush (set_config(..., true) is local to this transaction and read at COMMIT).
    rows = session.execute(
        _pg_insert_images(), {**columns, "now": utcnow(), "sync": "on" if durable else "off"}
    ).all()
    return {sha: image_id for image_id, sha, _ in rows}


def add_image(
    session: Session,
    store: BlobStore,
    item: NewImage,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    durable: bool | None = None,
) -> AddedImage:
    """Add one image (stored once); see add_images."""
    return add_images(session, store, [item], max_pixels=max_pixels, durable=durable)[0]


def _label_rows(
    image_id: int, labels: Sequence[Label], source: str, now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "image_id": image_id,
            "source": source,
            "name": " ".join(label.name.split()),
            "ul_x": label.box.x1 if label.box else None,
            "ul_y": label.box.y1 if label.box else None,
            "lr_x": label.box.x2 if label.box else None,
            "lr_y": label.box.y2 if label.box else None,
            "created_at": now,
        }
        for label in labels
    ]


def _insert_labels(session: Session, image_id: int, labels: Sequence[Label], source: str) -> None:
    session.execute(insert(_table(LabelRow)), _label_rows(image_id, labels, source, utcnow()))


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
    session.execute(
        delete(LabelRow).where(LabelRow.image_id == image_id, LabelRow.source == source)
    )
    if labels:
        _insert_labels(session, image_id, labels, source)
    session.execute(
        insert(LoadChange).values(
            kind="labels", city_id=city_id, image_id=image_id, created_at=utcnow()
        )
    )


def labels_of(session: Session, image_id: int) -> list[Label]:
    """Every label of an image, boxes first."""
    rows = session.scalars(
        select(LabelRow).where(LabelRow.image_id == image_id).order_by(LabelRow.id)
    )
    labels = [Label(row.name, _box_of(row)) for row in rows]
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


def image_facts() -> Select[int, int, str, str, int, int, datetime]:
    """Select image id, city id, sight name, blob key, width, height, arrival time."""
    return (
        select(
            FactSight.image_id,
            FactSight.city_id,
            Sight.name,
            ImageRow.blob_key,
            FactSight.width,
            FactSight.height,
            FactSight.created_at,
        )
        .join(ImageRow, ImageRow.id == FactSight.image_id)
        .outerjoin(Sight, Sight.id == FactSight.sight_id)
    )


def unlabelled_images(session: Session, *, city_id: int, limit: int) -> list[StoredImage]:
    """Images of a city without any label, oldest first."""
    labelled = select(LabelRow.image_id).where(LabelRow.image_id == FactSight.image_id)
    given_up = select(LabellingLog.image_id).where(
        LabellingLog.image_id == FactSight.image_id, LabellingLog.outcome == "unlabellable"
    )
    rows = session.execute(
        image_facts()
        .where(FactSight.city_id == city_id, ~labelled.exists(), ~given_up.exists())
        .order_by(FactSight.image_id)
        .limit(limit)
    ).all()
    return [StoredImage(r.image_id, r.city_id, r.name, r.blob_key, r.width, r.height) for r in rows]


def _box_of(row: LabelRow) -> Box | None:
    if row.ul_x is None or row.ul_y is None or row.lr_x is None or row.lr_y is None:
        return None
    return Box(row.ul_x, row.ul_y, row.lr_x, row.lr_y)
