"""Warehouse fixtures: one parametrised `warehouse` for SQLite (a temp file) and PostgreSQL.

PostgreSQL gets a temporary database `sightscan_test_<random>` per test session, created
and dropped with psycopg in autocommit mode; every test starts from empty tables. Tests
skip with a clear reason when the server at 127.0.0.1:5432 is unreachable.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from postgres_db import temporary_database
from sightscan.config import load_settings
from sightscan.storage import BlobStore
from sightscan.warehouse import Warehouse
from sightscan.warehouse.db import make_engine, upgrade
from sightscan.warehouse.models import Base


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[URL]:
    """A fresh temporary PostgreSQL database for this test session (dropped afterwards)."""
    with temporary_database() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_engine(postgres_url: URL) -> Iterator[Engine]:
    """An engine on the session's temporary database, migrated to head."""
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty warehouse database on each backend."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    engine = request.getfixturevalue("postgres_engine")
    _truncate_all(engine)
    yield engine


@pytest.fixture
def backend(warehouse_engine: Engine) -> str:
    """'sqlite' or 'postgresql'."""
    return warehouse_engine.dialect.name


@pytest.fixture
def blob_store(tmp_path: Path) -> BlobStore:
    """A local blob store in the test's temporary folder."""
    return BlobStore(str(tmp_path / "blobs"))


@pytest.fixture
def warehouse(warehouse_engine: Engine, blob_store: BlobStore, tmp_path: Path) -> Warehouse:
    """The warehouse under test: the parametrised database plus a local blob store."""
    settings = load_settings(sightscan_data_dir=tmp_path)
    return Warehouse(warehouse_engine, blob_store, settings)


def jpeg_bytes(seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A small valid JPEG whose content (and hash) depends on `seed`."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    image.putpixel((0, 0), (seed % 256, (seed // 256) % 256, (seed // 65536) % 256))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def make_jpeg() -> Callable[..., bytes]:
    """Factory of distinct small JPEGs: make_jpeg(seed)."""
    return jpeg_bytes
