"""Small dialect helpers shared by the repository modules."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Result
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert_insert(session: Session, table: Any) -> Any:
    """An INSERT that supports on_conflict_do_* on both SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE (execute() types it as a plain Result)."""
    return cast(CursorResult[Any], result).rowcount
