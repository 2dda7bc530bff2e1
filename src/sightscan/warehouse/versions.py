"""Model versions per city: 1, 2, 3… each with its blob, metadata and metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sightscan.errors import ConflictError
from sightscan.storage import BlobStore
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.models import City, LoadChange, ModelRow, utcnow


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A published model version of a city."""

    city: str
    version: int
    blob_key: str
    size_bytes: int
    metadata: dict[str, Any]
    metrics: dict[str, Any]
    labelled_images: int


def add_model_version(
    session: Session,
    store: BlobStore,
    *,
    city: str,
    model_bytes: bytes,
    metadata: dict[str, Any],
    metrics: dict[str, Any],
    labelled_images: int = 0,
    fence: Callable[[Session], None] | None = None,
    after_version: int | None = None,
) -> ModelVersion:
    """Store the model blob, then its row as the city's next version.

    With `after_version` the row must follow that version: ConflictError when another one
    was published since (a model derived from that version must not hide a newer one; the
    blob then stays unreferenced, as after a crash).

    `fence` (a job attempt's, see sightscan.pipeline) runs first in the same transaction
    and refuses a publisher whose job was taken over. The blob is written (durably) before
    the row, so a crash leaves at most an unreferenced blob, never a version without bytes;
    (city, version) is unique, so two publishers cannot both take the same number: the
    loser's transaction fails and nothing of it remains.
    """
    if fence is not None:
        fence(session)
    city_row = get_or_create_city(session, city)
    blob_key = store.put(model_bytes)
    now = utcnow()
    # Take the city's publishing slot before reading the current version: the first write
    # takes SQLite's write lock, and PostgreSQL locks the city row, so concurrent publishers
    # wait for each other and get consecutive numbers instead of a conflict.
    session.execute(insert(LoadChange).values(kind="model", city_id=city_row.id, created_at=now))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(City.id).where(City.id == city_row.id).with_for_update())
    current = session.scalar(
        select(func.max(ModelRow.version)).where(ModelRow.city_id == city_row.id)
    )
    if after_version is not None and (current or 0) != after_version:
        raise ConflictError(f"{city_row.name} is at version {current} now, not "
                            f"{after_version}: run again")
    version = (current or 0) + 1
    try:
        with session.begin_nested():
            session.execute(
                insert(ModelRow).values(
                    city_id=city_row.id,
                    version=version,
                    blob_key=blob_key,
                    size_bytes=len(model_bytes),
                    meta=metadata,
                    metrics=metrics,
                    labelled_images=labelled_images,
                    created_at=now,
                )
            )
    except IntegrityError:
        raise ConflictError(
            f"version {version} of {city_row.name} was published concurrently"
        ) from None
    return ModelVersion(
        city_row.name, version, blob_key, len(model_bytes), metadata, metrics, labelled_images
    )


def model_versions(session: Session, *, city_id: int) -> list[ModelVersion]:
    """Every version of a city, newest first."""
    rows = session.execute(
        select(ModelRow, City.name)
        .join(City, City.id == ModelRow.city_id)
        .where(ModelRow.city_id == city_id)
        .order_by(ModelRow.version.desc())
    ).all()
    return [
        ModelVersion(
            name, r.version, r.blob_key, r.size_bytes, r.meta, r.metrics, r.labelled_images
        )
        for r, name in rows
    ]


def latest_model_version(session: Session, *, city_id: int) -> ModelVersion | None:
    """The newest version of a city straight from the integration layer, or None."""
    versions = model_versions(session, city_id=city_id)
    return versions[0] if versions else None
