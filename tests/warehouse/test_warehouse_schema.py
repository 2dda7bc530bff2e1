"""The migrations build exactly the schema that warehouse/models.py declares, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from sightscan.warehouse.models import Base


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": False}
        )
        return list(compare_metadata(context, Base.metadata))


def test_the_migrated_database_has_exactly_the_models_schema(warehouse_engine: Engine) -> None:
    assert _differences(warehouse_engine) == []
