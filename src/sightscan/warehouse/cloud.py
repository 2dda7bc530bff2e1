"""Worker heartbeats and the GPU instance's log of starts, stops, refusals and errors."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from sightscan.warehouse._sql import upsert_insert
from sightscan.warehouse.models import GpuInstanceEvent, Job, WorkerHeartbeat, utcnow

RUN_ACTIONS = ("start", "stop", "stopped")


def beat_worker(
    session: Session, *, worker_id: str, queue: str, host: str, now: datetime | None = None
) -> None:
    """Record that a queue worker is alive now."""
    now = now or utcnow()
    session.execute(
        upsert_insert(session, WorkerHeartbeat.__table__)
        .values(worker_id=worker_id, queue=queue, host=host[:200], started_at=now, beat_at=now)
        .on_conflict_do_update(index_elements=["worker_id"], set_={"beat_at": now})
    )


def forget_worker(session: Session, worker_id: str) -> None:
    """A worker that stops cleanly removes its heartbeat."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))


def alive_workers(session: Session, *, queue: str, since: datetime) -> int:
    """Workers of `queue` that beat at or after `since`."""
    return (
        session.scalar(
            select(func.count())
            .select_from(WorkerHeartbeat)
            .where(WorkerHeartbeat.queue == queue, WorkerHeartbeat.beat_at >= since)
        )
        or 0
    )


def live_workers(session: Session, *, queue: str, within_seconds: int = 90) -> int:
    """Workers of `queue` that beat within the last `within_seconds` (about three beats)."""
    return alive_workers(session, queue=queue, since=utcnow() - timedelta(seconds=within_seconds))


def waiting_training_jobs(session: Session) -> int:
    """Training jobs queued and not yet taken by a worker."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.stage == "train", Job.state == "queued")
        )
        or 0
    )


def record_gpu_event(
    session: Session,
    *,
    instance_id: str,
    action: str,
    state: str | None,
    reason: str | None,
    now: datetime | None = None,
) -> None:
    """Append one start/stop/stopped/refused/error line to the GPU instance's log."""
    session.execute(
        insert(GpuInstanceEvent).values(
            instance_id=instance_id,
            action=action,
            state=state,
            reason=reason[:1000] if reason else None,
            created_at=now or utcnow(),
        )
    )


def last_gpu_event(session: Session, instance_id: str) -> GpuInstanceEvent | None:
    """The newest log line of the instance."""
    return session.scalar(
        select(GpuInstanceEvent)
        .where(GpuInstanceEvent.instance_id == instance_id)
        .order_by(GpuInstanceEvent.id.desc())
        .limit(1)
    )


def last_run_event(session: Session, instance_id: str) -> GpuInstanceEvent | None:
    """The newest start or stop of the instance."""
    return session.scalar(
        select(GpuInstanceEvent)
        .where(
            GpuInstanceEvent.instance_id == instance_id,
            GpuInstanceEvent.action.in_(RUN_ACTIONS),
        )
        .order_by(GpuInstanceEvent.id.desc())
        .limit(1)
    )


def gpu_hours(session: Session, *, instance_id: str, since: datetime, now: datetime) -> float:
    """Hours the instance ran between `since` and `now`, from its recorded starts and stops."""
    rows = session.scalars(
        select(GpuInstanceEvent)
        .where(
            GpuInstanceEvent.instance_id == instance_id,
            GpuInstanceEvent.action.in_(RUN_ACTIONS),
            GpuInstanceEvent.created_at >= since - timedelta(days=2),
        )
        .order_by(GpuInstanceEvent.id)
    ).all()
    seconds = 0.0
    running_from: datetime | None = None
    for row in rows:
        at = _aware(row.created_at)
        if row.action == "start" and running_from is None:
            running_from = at
        elif row.action != "start" and running_from is not None:
            seconds += _overlap(running_from, at, since, now)
            running_from = None
    if running_from is not None:
        seconds += _overlap(running_from, now, since, now)
    return seconds / 3600.0


def gpu_events(session: Session, *, limit: int = 10) -> list[dict[str, Any]]:
    """Newest GPU instance log lines first, JSON-ready."""
    rows = session.scalars(
        select(GpuInstanceEvent).order_by(GpuInstanceEvent.id.desc()).limit(limit)
    ).all()
    return [
        {
            "instance_id": row.instance_id,
            "action": row.action,
            "state": row.state,
            "reason": row.reason,
            "time": _aware(row.created_at).isoformat(),
        }
        for row in rows
    ]


def _overlap(start: datetime, end: datetime, since: datetime, now: datetime) -> float:
    return max(0.0, (min(end, now) - max(start, since)).total_seconds())


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes; the warehouse stores UTC."""
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
