"""Engines, sessions and migrations for the warehouse (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sightscan.errors import ConfigurationError, DatabaseUnavailableError

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x5167_5CA1  # any constant shared by every SightScan process


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """Processes started together on one SQLite file (`sightscan up`) migrate one at a time.

    SQLite has no advisory lock; without this, two processes can both see an empty file
    and both create `alembic_version`. A lock file beside the database serialises them.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    import fcntl

    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        yield


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a worker writes; busy_timeout makes writers wait, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_before_savepoint(connection: Any, _name: str | None) -> None:
    # pysqlite only emits BEGIN before the first INSERT/UPDATE/DELETE. A SAVEPOINT sent
    # before that opens its own transaction, and RELEASE then commits it: the nested work
    # would survive a rollback of the outer transaction. Begin the outer one first.
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN")


# A worker cut off mid-transaction (a network partition) keeps its row locks until the
# server notices it is gone, by default after two hours of TCP silence; meanwhile the
# refresher waits on those rows and no lost job is queued again. With these keepalives
# (session settings of the server's side of each connection) PostgreSQL ends such a
# session within about 25 s; a live client's kernel answers them, however busy it is.
SERVER_KEEPALIVES = ("-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 "
                     "-c tcp_keepalives_count=3")


def make_engine(url: URL | str) -> Engine:
    """An engine for the warehouse URL; creates the SQLite folder when needed."""
    engine_url = make_url(url)
    if engine_url.get_backend_name() == "sqlite":
        if engine_url.database and engine_url.database != ":memory:":
            Path(engine_url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(engine_url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _sqlite_begin_before_savepoint)
        return engine
    if engine_url.get_backend_name() == "postgresql":
        options = " ".join(filter(None, [str(engine_url.query.get("options", "")),
                                         SERVER_KEEPALIVES]))
        try:
            # No pre-ping: it costs a round trip per checkout; a dropped connection fails one
            # statement, invalidates the pool, and the queue retries (OperationalError).
            return create_engine(engine_url.difference_update_query(["options"]),
                                 pool_recycle=1800, pool_size=5, max_overflow=10,
                                 connect_args={"options": options})
        except ImportError:
            raise ConfigurationError(
                "PGHOST: PostgreSQL needs a driver: pip install 'sightscan[postgres]'"
            ) from None
    raise ConfigurationError(f"DATABASE_URL: unsupported backend {engine_url.get_backend_name()!r}")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def unreachable(engine: Engine, exc: OperationalError | InterfaceError) -> DatabaseUnavailableError:
    """One line naming the database (password hidden) and the driver's reason."""
    reason = str(exc.orig or exc).strip().splitlines()
    where = engine.url.render_as_string(hide_password=True)
    return DatabaseUnavailableError(
        f"the warehouse database {where} is unreachable: {(reason[0] if reason else '?')[:200]}"
    )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision`; DatabaseUnavailableError when it is down."""
    try:
        _upgrade(engine, revision)
    except (OperationalError, InterfaceError) as exc:
        raise unreachable(engine, exc) from None


def _upgrade(engine: Engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _sqlite_migration_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Processes started together (API, workers, refresher) migrate one at a time;
            # the lock is released when this transaction (with its DDL) commits.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
