"""Data warehouse (DWH): load, integration and data mart layers over SQLite or PostgreSQL.

`Warehouse` bundles the session factory and the blob store; the repository functions in
the sub-modules take a Session and never commit, so callers own their transactions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from sightscan.config import Settings
from sightscan.storage import BlobStore, blob_store_from_settings
from sightscan.warehouse.db import make_engine, make_session_factory, transaction, upgrade


class Warehouse:
    """The warehouse's database and blob store, opened from settings."""

    def __init__(self, engine: Engine, blobs: BlobStore, settings: Settings) -> None:
        self.engine = engine
        self.blobs = blobs
        self.settings = settings
        self._sessions = make_session_factory(engine)

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = False) -> Warehouse:
        """Open the configured database and blob store; optionally apply migrations."""
        engine = make_engine(settings.database_sqlalchemy_url)
        if migrate:
            upgrade(engine)
        return cls(engine, blob_store_from_settings(settings), settings)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on error."""
        with transaction(self._sessions) as session:
            yield session

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


__all__ = ["Warehouse"]
