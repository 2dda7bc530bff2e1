"""Where a city stands, in one answer for the web client: requests, stage, error, model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from sightscan.errors import NotFoundError
from sightscan.warehouse.models import City, CityRequest, FactSight, Job, MartCityModel


def city_status(session: Session, city: str, *, requests_needed: int) -> dict[str, Any]:
    """The status of a normalised, resolved city; NotFoundError when nobody asked for it
    and it has no data.

    `stage` is the latest job's stage while it is queued, running or done, `failed` when it
    failed (`error` says why), `ready` when a model is published and nothing runs, and
    `requested` before any job.
    """
    row = session.scalar(select(City).where(City.name == city))
    if row is None:
        raise NotFoundError(f"nobody asked for {city!r} and it has no data")
    request = session.get(CityRequest, row.id)
    model = session.scalar(select(MartCityModel).where(MartCityModel.city_id == row.id))
    job = session.scalar(
        select(Job).where(Job.city_id == row.id).order_by(Job.id.desc()).limit(1)
    )
    has_images = session.scalar(select(exists().where(FactSight.city_id == row.id)))
    if request is None and model is None and job is None and not has_images:
        raise NotFoundError(f"nobody asked for {city!r} and it has no data")
    stage, state, error = "requested", None, None
    if job is not None:
        stage, state = job.stage, job.state
        if job.state == "failed":
            stage, error = "failed", _plain(job.reason) or "failed"
        elif job.state == "queued" and job.reason:  # waiting for a retry: say why
            error = _plain(job.reason)
    if model is not None and (job is None or job.state in ("done", "failed")):
        stage, error = "ready", None
    return {
        "city": city,
        "name": _display_name(city),
        "requests": request.count if request is not None else 0,
        "requests_needed": requests_needed,
        "stage": stage,
        "state": state,
        "error": error,
        "model_version": model.version if model is not None else -1,
    }


def _plain(reason: str | None) -> str | None:
    """A job's reason without the exception class ("ExternalServiceError: ...")."""
    if reason is None:
        return None
    head, sep, rest = reason.partition(": ")
    return rest if sep and head.isidentifier() and head.endswith("Error") else reason


def _display_name(city: str) -> str:
    from sightscan.gazetteer import get_gazetteer

    known = get_gazetteer().lookup(city)
    return known.name if known is not None and known.key == city else city
