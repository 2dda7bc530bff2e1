"""Warehouse tables, in the seed's three layers.

- load layer: `load_changes`, an append-only log of every arrival (image, labels, model).
  Each write appends one row in the same transaction; the mart refresh consumes the rows
  not yet refreshed, so its cost follows what changed, not what is stored.
- integration layer: a star schema: `dim_city`, `dim_sight`, `dim_image` (unique by content
  hash and by source URL), `fact_sights` (city, sight, image, resolution, time), `labels`
  (boxes relative to the image), `fact_models` (city, version, blob), and
  `everyday_images`: the everyday pool, images of no city (no sight of any), negatives
  for every city's training.
- data mart layer: `mart_training_images` (per-city training input) and `mart_city_models`
  (current model per city: the API's input and the list of supported cities).
Operational tables: `city_requests`, `vision_calls`, `jobs`, `labelling_log`, `workers`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the warehouse uses."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


Timestamp = DateTime(timezone=True)


# ---------------------------------------------------------------- integration layer
class City(Base):
    __tablename__ = "dim_city"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Sight(Base):
    __tablename__ = "dim_sight"
    __table_args__ = (UniqueConstraint("city_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    city_id: Mapped[int] = mapped_column(ForeignKey("dim_city.id"))
    name: Mapped[str] = mapped_column(String(200))
    # what the sight is, from discovery (Wikidata, Places, OSM): shown with a result
    description: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(2000))


class ImageRow(Base):
    __tablename__ = "dim_image"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source_url: Mapped[str | None] = mapped_column(String(2000), unique=True)
    blob_key: Mapped[str] = mapped_column(String(64))
    mime_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    licence: Mapped[str | None] = mapped_column(String(200))
    author: Mapped[str | None] = mapped_column(String(500))
    page_url: Mapped[str | None] = mapped_column(String(2000))


class FactSight(Base):
    __tablename__ = "fact_sights"
    image_id: Mapped[int] = mapped_column(ForeignKey("dim_image.id"), primary_key=True)
    city_id: Mapped[int] = mapped_column(ForeignKey("dim_city.id"), index=True)
    sight_id: Mapped[int | None] = mapped_column(ForeignKey("dim_sight.id"))
    origin: Mapped[str] = mapped_column(String(20))  # crawler | user | import
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class EverydayImage(Base):
    """A photo of the everyday pool: in dim_image like every image, but of no city."""

    __tablename__ = "everyday_images"
    image_id: Mapped[int] = mapped_column(ForeignKey("dim_image.id"), primary_key=True)
    category: Mapped[str] = mapped_column(String(200))  # where it came from (Commons category)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class LabelRow(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("dim_image.id"), index=True)
    source: Mapped[str] = mapped_column(String(20))  # vision | weak | user | import
    name: Mapped[str] = mapped_column(String(200))
    ul_x: Mapped[float | None] = mapped_column(Float)
    ul_y: Mapped[float | None] = mapped_column(Float)
    lr_x: Mapped[float | None] = mapped_column(Float)
    lr_y: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class ModelRow(Base):
    __tablename__ = "fact_models"
    __table_args__ = (UniqueConstraint("city_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    city_id: Mapped[int] = mapped_column(ForeignKey("dim_city.id"))
    version: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    labelled_images: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


# ---------------------------------------------------------------- load layer
class LoadChange(Base):
    __tablename__ = "load_changes"
    __table_args__ = (
        Index(
            "ix_load_changes_pending",
            "id",
            sqlite_where=text("refreshed = 0"),
            postgresql_where=text("refreshed = false"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # image | labels | model
    city_id: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int | None] = mapped_column(BigInteger)
    refreshed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


# ---------------------------------------------------------------- data mart layer
class MartTrainingImage(Base):
    __tablename__ = "mart_training_images"
    image_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    city_id: Mapped[int] = mapped_column(Integer, index=True)
    sight: Mapped[str | None] = mapped_column(String(200))
    blob_key: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    labels: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    labelled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class MartCityModel(Base):
    __tablename__ = "mart_city_models"
    city_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    city: Mapped[str] = mapped_column(String(100), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


# ---------------------------------------------------------------- operational tables
class CityRequest(Base):
    __tablename__ = "city_requests"
    city_id: Mapped[int] = mapped_column(ForeignKey("dim_city.id"), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    first_requested_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_requested_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    crawl_queued_at: Mapped[datetime | None] = mapped_column(Timestamp)
    photo_folder: Mapped[str | None] = mapped_column(String(1000))
    sights: Mapped[list[str] | None] = mapped_column(JSON)


class VisionCalls(Base):
    __tablename__ = "vision_calls"
    city_id: Mapped[int] = mapped_column(ForeignKey("dim_city.id"), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_city_stage", "city_id", "stage"),
        # At most one queued or running job per city and stage, enforced by the database.
        Index(
            "uq_jobs_active",
            "city_id",
            "stage",
            unique=True,
            sqlite_where=text("state IN ('queued', 'running')"),
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    city_id: Mapped[int] = mapped_column(ForeignKey("dim_city.id"))
    stage: Mapped[str] = mapped_column(String(20))  # a sightscan.pipeline.Stage value
    state: Mapped[str] = mapped_column(String(20))  # queued | running | done | failed
    reason: Mapped[str | None] = mapped_column(Text)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    heartbeat_at: Mapped[datetime | None] = mapped_column(Timestamp)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LabellingLog(Base):
    __tablename__ = "labelling_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    city_id: Mapped[int] = mapped_column(ForeignKey("dim_city.id"), index=True)
    image_id: Mapped[int | None] = mapped_column(BigInteger)
    labeller: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))  # labelled | no-landmark | capped | error
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


# ---------------------------------------------------------------- city requests and GPU instance
class CityRequestClient(Base):
    """One row per (city, client): the threshold counts distinct clients, not requests.

    `client_hash` is a keyed hash of the rate limiter's client key, never the raw address.
    """

    __tablename__ = "city_request_clients"
    __table_args__ = (Index("ix_city_request_clients_client", "client_hash", "requested_at"),)
    city_id: Mapped[int] = mapped_column(ForeignKey("dim_city.id"), primary_key=True)
    client_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class WorkerHeartbeat(Base):
    """A queue worker's last sign of life (the GPU manager asks: is a training worker alive?)."""

    __tablename__ = "worker_heartbeats"
    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    queue: Mapped[str] = mapped_column(String(20), index=True)
    host: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class GpuInstanceEvent(Base):
    """Every start, stop, refusal and error of the on-demand GPU training instance."""

    __tablename__ = "gpu_instance_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(100), index=True)
    action: Mapped[str] = mapped_column(String(20))  # start | stop | stopped | refused | error
    state: Mapped[str | None] = mapped_column(String(20))  # the instance state then seen
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
