"""A temporary PostgreSQL database for tests: created on entry, dropped (FORCE) on exit.

Tests that use it skip with the reason when psycopg is missing or the server at
SIGHTSCAN_TEST_PGHOST:SIGHTSCAN_TEST_PGPORT (default 127.0.0.1:5432) is unreachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import URL

PG_HOST = os.environ.get("SIGHTSCAN_TEST_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SIGHTSCAN_TEST_PGPORT", "5432"))
PG_USER = os.environ.get("SIGHTSCAN_TEST_PGUSER", "postgres")


@contextmanager
def temporary_database() -> Iterator[URL]:
    """The URL of a new empty database `sightscan_test_<random>`, dropped afterwards."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        pytest.skip("PostgreSQL tests need psycopg: pip install 'sightscan[postgres]'")
    try:
        admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                                autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable ({type(exc).__name__})")
    name = f"sightscan_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield URL.create("postgresql+psycopg", username=PG_USER, host=PG_HOST, port=PG_PORT,
                             database=name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
