"""API fixtures: a `client` (FastAPI TestClient) on a fresh warehouse, for SQLite and PostgreSQL.

Every fixture that touches the warehouse is parametrised over both backends through
`db_backend`. PostgreSQL gets one temporary database `sightscan_test_<random>` per test
session (created and dropped with psycopg in autocommit mode, migrated once); each test
starts from empty tables. PostgreSQL parameters skip with the reason when 127.0.0.1:5432
is unreachable. The scheduler is `RecordingScheduler`: real job rows, no queue.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine, delete, func, select

from postgres_db import temporary_database
from sightscan.api import create_app
from sightscan.config import Settings, load_settings
from sightscan.storage import blob_store_from_settings
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.db import make_engine, upgrade
from sightscan.warehouse.jobs import active_job, create_job
from sightscan.warehouse.marts import refresh_marts
from sightscan.warehouse.models import Base
from sightscan.warehouse.versions import ModelVersion, add_model_version

API_KEY = "test-operator-key-0123456789"


# ---------------------------------------------------------------- environment
# ---------------------------------------------------------------- databases
@pytest.fixture(scope="session")
def api_postgres_engine() -> Iterator[Engine]:
    """A migrated engine on a temporary PostgreSQL database, dropped after the session."""
    with temporary_database() as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()


def _empty_all_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest) -> str:
    """'sqlite' or 'postgresql': every API test runs on both."""
    return str(request.param)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with `make_settings`) to change settings."""
    return {}


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for the test's data dir: API key set, rate limit high, threshold 3."""
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "sightscan_data_dir": tmp_path / "data",
            "sightscan_api_key": API_KEY,
            "sightscan_rate_limit_per_minute": 10_000,
            "sightscan_city_request_threshold": 3,
        }
        values.update(overrides)
        return load_settings(**values)
    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings],
             settings_overrides: dict[str, Any]) -> Settings:
    """The settings of the app under test."""
    return make_settings(**settings_overrides)


@pytest.fixture
def warehouse(db_backend: str, settings: Settings,
              request: pytest.FixtureRequest) -> Iterator[Warehouse]:
    """An empty, migrated warehouse on the parametrised backend, blobs in tmp_path."""
    if db_backend == "sqlite":
        sqlite_warehouse = Warehouse.from_settings(settings, migrate=True)
        yield sqlite_warehouse
        sqlite_warehouse.dispose()
        return
    engine: Engine = request.getfixturevalue("api_postgres_engine")
    _empty_all_tables(engine)
    yield Warehouse(engine, blob_store_from_settings(settings), settings)


# ---------------------------------------------------------------- scheduler and app
@dataclass
class RecordingScheduler:
    """A real, in-process Scheduler: records a queued job row per submission, runs nothing."""

    warehouse: Warehouse
    submitted: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def submit(self, stage: str, city: str, **options: Any) -> int | None:
        with self.warehouse.transaction() as session:
            city_row = get_or_create_city(session, city)
            if active_job(session, city_id=city_row.id, stage=stage) is not None:
                return None
            job_id = create_job(session, city_id=city_row.id, stage=stage)
        self.submitted.append((stage, city_row.name, options))
        return job_id


@pytest.fixture
def scheduler(warehouse: Warehouse) -> RecordingScheduler:
    """The scheduler the app submits to."""
    return RecordingScheduler(warehouse)


@pytest.fixture
def app(settings: Settings, warehouse: Warehouse, scheduler: RecordingScheduler) -> FastAPI:
    """The API under test."""
    return create_app(settings, warehouse=warehouse, scheduler=scheduler)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client for the app (lifespan run)."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def operator() -> dict[str, str]:
    """Headers with the right API key."""
    return {"X-API-Key": API_KEY}


# ---------------------------------------------------------------- data helpers
def image_bytes(seed: int = 0, size: tuple[int, int] = (32, 24), fmt: str = "JPEG") -> bytes:
    """A small valid image whose content (hash) depends on `seed`."""
    image = Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256))
    image.putpixel((0, 0), (seed % 256, seed // 256 % 256, 7))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """Factory of distinct small images: make_image(seed, size=(w, h), fmt="PNG")."""
    return image_bytes


@pytest.fixture(scope="session")
def png_bomb() -> bytes:
    """A valid 1-bit 20000x20000 PNG of about 50 kB (400 million pixels when decoded)."""
    width = height = 20_000
    row = b"\x00" + bytes(width // 8)
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row) for _ in range(height)]
    idat = b"".join(chunks) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
def publish_model(warehouse: Warehouse) -> Callable[..., ModelVersion]:
    """Publish a model version for a city and refresh the marts, as MTS + DMR would."""
    def publish(city: str, model_bytes: bytes = b"onnx-model", **metrics: Any) -> ModelVersion:
        with warehouse.transaction() as session:
            version = add_model_version(
                session, warehouse.blobs, city=city, model_bytes=model_bytes,
                metadata={"sights": ["Dom", "Bridge"], "input_size": 224},
                metrics=metrics or {"map50": 0.8}, labelled_images=120,
            )
            refresh_marts(session)
        return version
    return publish


@pytest.fixture
def snapshot(warehouse: Warehouse) -> Callable[[], dict[str, int]]:
    """Row counts of every warehouse table and the number of stored blobs (for 'unchanged')."""
    def take() -> dict[str, int]:
        with warehouse.transaction() as session:
            counts = {table.name: session.scalar(select(func.count()).select_from(table)) or 0
                      for table in Base.metadata.sorted_tables}
        root = Path(warehouse.blobs.root)
        counts["blobs"] = sum(1 for path in root.rglob("*") if path.is_file())
        return counts
    return take
