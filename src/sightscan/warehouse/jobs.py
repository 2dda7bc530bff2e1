"""Pipeline job records (state, reason, counts) and the labelling log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sightscan.errors import NotFoundError
from sightscan.warehouse._sql import rowcount
from sightscan.warehouse.models import City, Job, LabellingLog, utcnow

ACTIVE = ("queued", "running")


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as the API and CLI show it."""

    id: int
    city: str
    stage: str
    state: str
    reason: str | None
    counts: dict[str, Any]
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    options: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "city": self.city,
            "stage": self.stage,
            "state": self.state,
            "reason": self.reason,
            "counts": self.counts,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def create_job(
    session: Session, *, city_id: int, stage: str, options: dict[str, Any] | None = None
) -> int | None:
    """Record a queued job; its id, or None when this city and stage already has an active one.

    Stage names are checked by the caller (`sightscan.pipeline.Stage`), not here.
    """
    if active_job(session, city_id=city_id, stage=stage) is not None:
        return None
    try:
        with session.begin_nested():  # the partial unique index settles concurrent submits
            return int(
                session.execute(
                    insert(Job)
                    .values(
                        city_id=city_id,
                        stage=stage,
                        state="queued",
                        counts={},
                        attempts=0,
                        options=options or {},
                        created_at=utcnow(),
                    )
                    .returning(Job.id)
                ).scalar_one()
            )
    except IntegrityError:
        return None


def claim_job(session: Session, job_id: int) -> bool:
    """Move a queued job to running; False when it is not queued (taken, done or failed)."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued")
        .values(
            state="running",
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            attempts=Job.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def hold_attempt(session: Session, job_id: int, *, attempt: int) -> bool:
    """Whether `attempt` still runs the job; True also refreshes its heartbeat and locks the row.

    The job attempt is the fencing token: writes of a stage (a version, labels, the end of
    the job) call this first in their own transaction and write nothing when it is False.
    """
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "running", Job.attempts == attempt)
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def heartbeat(
    session: Session,
    job_id: int,
    *,
    counts: dict[str, Any] | None = None,
    attempt: int | None = None,
) -> None:
    """Show that a running job is alive (and optionally its progress counts)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if counts is not None:
        values["counts"] = counts
    condition = (Job.id == job_id) & (Job.state == "running")
    if attempt is not None:  # a stale attempt must not keep a newer attempt's job alive
        condition &= Job.attempts == attempt
    session.execute(
        update(Job)
        .where(condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def requeue_stale_jobs(session: Session, *, older_than: datetime) -> list[int]:
    """Running jobs whose worker stopped beating before `older_than`: queue them again."""
    # One conditional UPDATE: a job whose attempt holds its row (publishing) is re-checked
    # after that transaction and left alone, as its heartbeat is then fresh.
    result = session.execute(
        update(Job)
        .where(Job.state == "running", Job.heartbeat_at < older_than)
        .values(state="queued", reason="worker stopped; queued again")
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(result.scalars())


def queued_jobs(session: Session, *, older_than: datetime) -> list[JobView]:
    """Jobs still queued since before `older_than` (their queue message may be lost)."""
    rows = session.execute(
        select(Job, City.name)
        .join(City, City.id == Job.city_id)
        .where(Job.state == "queued", Job.created_at < older_than)
        .order_by(Job.id)
    ).all()
    return [_view(job, name) for job, name in rows]


def get_job(session: Session, job_id: int) -> JobView:
    """One job; NotFoundError when absent."""
    row = session.execute(
        select(Job, City.name).join(City, City.id == Job.city_id).where(Job.id == job_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no job {job_id}")
    return _view(row[0], row[1])


def finish_job(
    session: Session,
    job_id: int,
    *,
    counts: dict[str, Any] | None = None,
    attempt: int | None = None,
) -> bool:
    """Mark a job done with its counts; with `attempt`, only if that attempt still runs it."""
    condition = Job.id == job_id
    if attempt is not None:
        condition &= (Job.state == "running") & (Job.attempts == attempt)
    result = session.execute(
        update(Job)
        .where(condition)
        .values(state="done", finished_at=utcnow(), counts=counts or {}, reason=None)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def fail_job(
    session: Session,
    job_id: int,
    *,
    reason: str,
    counts: dict[str, Any] | None = None,
    final: bool = True,
    attempt: int | None = None,
) -> bool:
    """Mark a job failed (final) or queued again, with the reason; with `attempt`, only if
    that attempt still runs it. False when nothing changed (NotFoundError: no such job)."""
    values: dict[str, Any] = {"state": "failed" if final else "queued", "reason": reason[:2000]}
    if final:
        values["finished_at"] = utcnow()
    if counts is not None:
        values["counts"] = counts
    condition = Job.id == job_id
    if attempt is not None:
        condition &= (Job.state == "running") & (Job.attempts == attempt)
    result = session.execute(
        update(Job).where(condition).values(**values).execution_options(synchronize_session=False)
    )
    if rowcount(result) == 1:
        return True
    if session.get(Job, job_id) is None:
        raise NotFoundError(f"no job {job_id}")
    return False


def list_jobs(session: Session, *, city: str | None = None, limit: int = 100) -> list[JobView]:
    """Newest jobs first, optionally of one (normalised) city."""
    stmt = select(Job, City.name).join(City, City.id == Job.city_id)
    if city is not None:
        stmt = stmt.where(City.name == city)
    rows = session.execute(stmt.order_by(Job.id.desc()).limit(limit)).all()
    return [_view(job, name) for job, name in rows]


def _view(j: Job, city: str) -> JobView:
    return JobView(
        j.id,
        city,
        j.stage,
        j.state,
        j.reason,
        j.counts or {},
        j.attempts,
        j.created_at,
        j.started_at,
        j.finished_at,
        j.options or {},
    )


def active_job(session: Session, *, city_id: int, stage: str) -> int | None:
    """The id of a queued or running job of this city and stage, if any."""
    return session.scalar(
        select(Job.id)
        .where(Job.city_id == city_id, Job.stage == stage, Job.state.in_(ACTIVE))
        .order_by(Job.id.desc())
        .limit(1)
    )


def active_stages(session: Session, *, city_id: int) -> list[str]:
    """The stages of the city that have a queued or running job."""
    return sorted(
        set(
            session.scalars(
                select(Job.stage).where(Job.city_id == city_id, Job.state.in_(ACTIVE))
            )
        )
    )


def log_labelling(
    session: Session,
    *,
    city_id: int,
    image_id: int | None,
    labeller: str,
    outcome: str,
    detail: str | None = None,
) -> None:
    """Append one line to the labelling log."""
    session.execute(
        insert(LabellingLog).values(
            city_id=city_id,
            image_id=image_id,
            labeller=labeller,
            outcome=outcome,
            detail=detail[:1000] if detail else None,
            created_at=utcnow(),
        )
    )


def labelling_log(
    session: Session, *, city: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Newest labelling log lines first."""
    stmt = select(LabellingLog, City.name).join(City, City.id == LabellingLog.city_id)
    if city is not None:
        stmt = stmt.where(City.name == city)
    return [
        {
            "city": name,
            "image_id": row.image_id,
            "labeller": row.labeller,
            "outcome": row.outcome,
            "detail": row.detail,
            "time": row.created_at.isoformat(),
        }
        for row, name in session.execute(stmt.order_by(LabellingLog.id.desc()).limit(limit))
    ]
