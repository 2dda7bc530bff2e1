"""The migrations build exactly the schema that warehouse/models.py declares, on both backends."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
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


def _migrate_after(barrier: Any, url: str) -> None:
    from sightscan.warehouse.db import make_engine, upgrade

    engine = make_engine(url)
    barrier.wait(timeout=60)
    upgrade(engine)
    engine.dispose()


def test_processes_started_together_on_one_sqlite_file_all_migrate(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    processes = [context.Process(target=_migrate_after, args=(barrier, url)) for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * 6


def test_postgresql_ends_the_sessions_of_clients_that_vanish(postgres_url: Any) -> None:
    """Server-side keepalives on every connection: a partitioned worker's locks are freed
    within seconds, not after the OS default of two hours (see db.SERVER_KEEPALIVES)."""
    from sqlalchemy import text

    from sightscan.warehouse.db import make_engine

    engine = make_engine(postgres_url.update_query_dict({"options": "-c application_name=x"}))
    with engine.connect() as connection:
        shown = [connection.execute(text(f"SHOW {name}")).scalar() for name in
                 ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
                  "application_name")]
    engine.dispose()
    assert shown == ["10", "5", "3", "x"]  # the URL's own options are kept
