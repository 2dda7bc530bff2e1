"""Data marts: per-city training images and the current model per city.

`refresh_marts` consumes the load layer's pending changes and rewrites only the mart rows
they touch, so its cost follows what changed since the last refresh. `rebuild_marts` is
the seed's wholesale rebuild, kept for recovery and for the benchmark's comparison.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Executable,
    String,
    any_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute, Session

from sightscan.warehouse._sql import rowcount, upsert_insert
from sightscan.warehouse.images import image_facts
from sightscan.warehouse.models import (
    Base,
    City,
    FactSight,
    LabelRow,
    LoadChange,
    MartCityModel,
    MartTrainingImage,
    ModelRow,
    utcnow,
)

BATCH = 5000
# Two refreshes whose changes touch the same photo (two label stages, a stage and the
# refresher) would both delete and re-insert its mart row, and the later insert fail on
# the earlier one's row; on PostgreSQL refreshes therefore take turns on this lock (held to
# the end of the transaction), so the later one sees the earlier one's rows and labels.
MART_REFRESH_LOCK = 0x5167_3A27


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What one refresh did."""

    changes: int
    images: int
    cities_with_new_model: int


def _among(
    session: Session, column: InstrumentedAttribute[int], ids: list[int]
) -> ColumnElement[bool]:
    """`column IN ids`; one array parameter on PostgreSQL instead of thousands of them."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=postgresql.ARRAY(BigInteger)))
    return column.in_(ids)


def _pending(session: Session, limit: int) -> list[tuple[int, str, int, int | None]]:
    stmt = (
        select(LoadChange.id, LoadChange.kind, LoadChange.city_id, LoadChange.image_id)
        .where(LoadChange.refreshed == false())  # matches the partial index's predicate
        .order_by(LoadChange.id)
        .limit(limit)
    )
    return [tuple(row) for row in session.execute(stmt).all()]  # type: ignore[misc]


def _pg_refresh_images(ids: ColumnElement[Any]) -> Executable:
    """PostgreSQL rebuilds the touched mart rows in the server: no row travels through Python.

    One INSERT ... SELECT with json_agg, names taken from the models; the same JSON shape as
    the portable path in `_refresh_images`.
    """
    box = case(
        (LabelRow.ul_x.is_(None), null()),
        else_=func.json_build_array(LabelRow.ul_x, LabelRow.ul_y, LabelRow.lr_x, LabelRow.lr_y),
    )
    label = func.json_build_object(
        _key("name"), LabelRow.name, _key("source"), LabelRow.source, _key("box"), box
    )
    label_lists = (
        select(
            LabelRow.image_id,
            func.json_agg(postgresql.aggregate_order_by(label, LabelRow.id)).label("labels"),
        )
        .where(LabelRow.image_id == ids)
        .group_by(LabelRow.image_id)
        .cte("label_lists")
    )
    rows = (
        image_facts()
        .add_columns(
            func.coalesce(label_lists.c.labels, func.json_build_array()),
            label_lists.c.labels.is_not(None),
        )
        .outerjoin(label_lists, label_lists.c.image_id == FactSight.image_id)
        .where(FactSight.image_id == ids)
    )
    mart = MartTrainingImage
    columns = [mart.image_id, mart.city_id, mart.sight, mart.blob_key, mart.width, mart.height,
               mart.created_at, mart.labels, mart.labelled]  # in the order of `rows`
    # SQLAlchemy keeps an INSERT's row count only when asked to.
    return insert(mart).from_select(columns, rows).execution_options(preserve_rowcount=True)


def _key(name: str) -> ColumnElement[str]:
    """A JSON object key as a typed parameter (PostgreSQL cannot infer an untyped one)."""
    return literal(name, String)


def _refresh_images(session: Session, image_ids: list[int]) -> int:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            delete(MartTrainingImage).where(_among(session, MartTrainingImage.image_id, image_ids))
        )
        ids = any_(bindparam(None, image_ids, type_=postgresql.ARRAY(BigInteger)))
        return rowcount(session.execute(_pg_refresh_images(ids)))
    rows = session.execute(
        image_facts().where(_among(session, FactSight.image_id, image_ids))
    ).all()
    labels: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for label in session.execute(
        select(
            LabelRow.image_id,
            LabelRow.name,
            LabelRow.source,
            LabelRow.ul_x,
            LabelRow.ul_y,
            LabelRow.lr_x,
            LabelRow.lr_y,
        )
        .where(_among(session, LabelRow.image_id, image_ids))
        .order_by(LabelRow.id)
    ):
        box = None if label.ul_x is None else [label.ul_x, label.ul_y, label.lr_x, label.lr_y]
        labels[label.image_id].append({"name": label.name, "source": label.source, "box": box})
    session.execute(
        delete(MartTrainingImage).where(_among(session, MartTrainingImage.image_id, image_ids))
    )
    if rows:
        session.execute(  # Core insert: batched multi-row VALUES, not the ORM's per-row path
            insert(Base.metadata.tables[MartTrainingImage.__tablename__]),
            [
                {
                    "image_id": r.image_id,
                    "city_id": r.city_id,
                    "sight": r.name,
                    "blob_key": r.blob_key,
                    "width": r.width,
                    "height": r.height,
                    "labels": labels.get(r.image_id, []),
                    "labelled": bool(labels.get(r.image_id)),
                    "created_at": r.created_at,
                }
                for r in rows
            ],
        )
    return len(rows)


def _refresh_models(session: Session, city_ids: set[int]) -> int:
    refreshed = 0
    for city_id in sorted(city_ids):
        latest = session.execute(
            select(ModelRow.id, ModelRow.version, ModelRow.blob_key, City.name)
            .join(City, City.id == ModelRow.city_id)
            .where(ModelRow.city_id == city_id)
            .order_by(ModelRow.version.desc())
            .limit(1)
        ).first()
        if latest is None:
            continue
        values = {
            "city_id": city_id,
            "city": latest.name,
            "version": latest.version,
            "model_id": latest.id,
            "blob_key": latest.blob_key,
            "updated_at": utcnow(),
        }
        session.execute(
            upsert_insert(session, MartCityModel.__table__)
            .values(**values)
            .on_conflict_do_update(index_elements=["city_id"], set_=values)
        )
        refreshed += 1
    return refreshed


def _take_turn(session: Session) -> None:
    """Wait for any other mart refresh or rebuild to commit (PostgreSQL; SQLite
    serialises whole transactions anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(MART_REFRESH_LOCK)))


def refresh_marts(session: Session, *, batch: int = BATCH) -> RefreshReport:
    """Bring the marts up to date with every change not yet refreshed."""
    changes = images = models = 0
    _take_turn(session)
    while pending := _pending(session, batch):
        image_ids = sorted({image_id for _, kind, _, image_id in pending if image_id is not None})
        model_cities = {city_id for _, kind, city_id, _ in pending if kind == "model"}
        if image_ids:
            images += _refresh_images(session, image_ids)
        models += _refresh_models(session, model_cities)
        session.execute(
            update(LoadChange)
            .where(_among(session, LoadChange.id, [change_id for change_id, *_ in pending]))
            .values(refreshed=True)
            .execution_options(synchronize_session=False)
        )
        changes += len(pending)
        if len(pending) < batch:
            break
    return RefreshReport(changes, images, models)


def rebuild_marts(session: Session) -> RefreshReport:
    """Rebuild every mart from the integration layer (the seed's way; cost grows with all data)."""
    _take_turn(session)
    session.execute(delete(MartTrainingImage))
    session.execute(delete(MartCityModel))
    session.execute(update(LoadChange).values(refreshed=True))
    image_ids = list(session.scalars(select(FactSight.image_id).order_by(FactSight.image_id)))
    images = sum(
        _refresh_images(session, image_ids[i : i + BATCH]) for i in range(0, len(image_ids), BATCH)
    )
    models = _refresh_models(session, set(session.scalars(select(ModelRow.city_id).distinct())))
    return RefreshReport(0, images, models)


# ---------------------------------------------------------------- mart queries
def supported_cities(session: Session) -> list[str]:
    """Cities that have a model, alphabetically."""
    return list(session.scalars(select(MartCityModel.city).order_by(MartCityModel.city)))


def current_model(session: Session, city: str) -> MartCityModel | None:
    """The current model of a normalised city name, or None."""
    return session.scalar(select(MartCityModel).where(MartCityModel.city == city))


def training_images(
    session: Session, *, city_id: int, labelled_only: bool = True
) -> list[MartTrainingImage]:
    """A city's images from the training mart, labelled ones by default, in id order."""
    stmt = select(MartTrainingImage).where(MartTrainingImage.city_id == city_id)
    if labelled_only:
        stmt = stmt.where(MartTrainingImage.labelled.is_(True))
    return list(session.scalars(stmt.order_by(MartTrainingImage.image_id)))


def negative_images(session: Session, *, city_id: int, limit: int) -> list[MartTrainingImage]:
    """Labelled photos of other cities: negatives (none of this city's sights) for training."""
    return list(
        session.scalars(
            select(MartTrainingImage)
            .where(MartTrainingImage.city_id != city_id, MartTrainingImage.labelled.is_(True))
            .order_by(MartTrainingImage.image_id)
            .limit(limit)
        )
    )


@dataclass(frozen=True, slots=True)
class CityOverview:
    """Counts per city for `sightscan cities` and the refresher."""

    city: str
    city_id: int
    images: int
    labelled_images: int
    labels: int
    model_version: int | None
    created_at: Any


def city_overview(session: Session) -> list[CityOverview]:
    """Every known city with image, labelled-image, label and model counts (from the marts)."""
    images = dict(
        session.execute(
            select(MartTrainingImage.city_id, func.count()).group_by(MartTrainingImage.city_id)
        ).all()
    )
    labelled = dict(
        session.execute(
            select(MartTrainingImage.city_id, func.count())
            .where(MartTrainingImage.labelled.is_(True))
            .group_by(MartTrainingImage.city_id)
        ).all()
    )
    labels = dict(
        session.execute(
            select(FactSight.city_id, func.count(LabelRow.id))
            .join(LabelRow, LabelRow.image_id == FactSight.image_id)
            .group_by(FactSight.city_id)
        ).all()
    )
    models = dict(session.execute(select(MartCityModel.city_id, MartCityModel.version)).all())
    return [
        CityOverview(
            c.name,
            c.id,
            images.get(c.id, 0),
            labelled.get(c.id, 0),
            labels.get(c.id, 0),
            models.get(c.id),
            c.created_at,
        )
        for c in session.scalars(select(City).order_by(City.name))
    ]
