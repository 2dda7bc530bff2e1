"""Queue worker heartbeats: which workers are alive, so commands can say whether work will run."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from sightscan.warehouse._sql import upsert_insert
from sightscan.warehouse.models import WorkerRow, utcnow

ALIVE_SECONDS = 30  # a worker beats every 10 s; three missed beats and it counts as gone


def worker_beat(session: Session, *, worker_id: str, queue: str) -> None:
    """Record that the worker `worker_id` on `queue` is alive now."""
    now = utcnow()
    session.execute(
        upsert_insert(session, WorkerRow.__table__)
        .values(id=worker_id, queue=queue, started_at=now, heartbeat_at=now)
        .on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now})
    )


def worker_gone(session: Session, *, worker_id: str) -> None:
    """Forget a worker that stops cleanly."""
    session.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))


def live_workers(session: Session, *, queue: str, within_seconds: int = ALIVE_SECONDS) -> int:
    """How many workers on `queue` have beaten within the last `within_seconds`."""
    since = utcnow() - timedelta(seconds=within_seconds)
    count = session.scalar(
        select(func.count())
        .select_from(WorkerRow)
        .where(WorkerRow.queue == queue, WorkerRow.heartbeat_at >= since)
    )
    return int(count or 0)
