"""ILS routes: queue labelling of a city's images, and read the labelling log.

`GET /api/cities/logs` is declared before the `/{city}` routes so it is never taken for a
city named "logs".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from sightscan.api.deps import (
    ApiKeyRequired,
    CityDep,
    OptionalCityDep,
    SchedulerDep,
    WarehouseDep,
)
from sightscan.api.schemas import ErrorOut, LabelJobOut, LogOut
from sightscan.errors import NotFoundError
from sightscan.pipeline import Scheduler, Stage
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city
from sightscan.warehouse.jobs import labelling_log
from sightscan.warehouse.models import FactSight

router = APIRouter(prefix="/api/cities", tags=["labelling"])

KEY_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 429)
}


@router.get("/logs", response_model=LogOut)
def labelling_logs(
    warehouse: WarehouseDep,
    name: OptionalCityDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, list[dict[str, Any]]]:
    """Newest labelling log lines first."""
    with warehouse.transaction() as session:
        return {"log": labelling_log(session, city=name, limit=limit)}


def _has_images(session: Session, city: str) -> bool:
    city_id = find_city(session, city).id
    return (
        session.scalar(select(FactSight.image_id).where(FactSight.city_id == city_id).limit(1))
        is not None
    )


def _queue_labelling(
    warehouse: Warehouse, scheduler: Scheduler, city: str, mode: str
) -> LabelJobOut:
    with warehouse.transaction() as session:
        if not _has_images(session, city):
            raise NotFoundError(f"no images of {city!r} to label")
    job_id = scheduler.submit(Stage.LABEL, city, mode=mode)
    return LabelJobOut(city=city, mode=mode, job_id=job_id)


# Both labelling routes answer alike: 202 with the queued job, behind the API key.
LABEL_ROUTE: dict[str, Any] = {
    "status_code": 202,
    "response_model": LabelJobOut,
    "dependencies": [ApiKeyRequired],
    "responses": KEY_ERRORS,
}


@router.post("/{city}", **LABEL_ROUTE)
def label_new_city(
    city: CityDep, warehouse: WarehouseDep, scheduler: SchedulerDep
) -> LabelJobOut:
    """Queue labelling of a new city's images (paid calls capped per city)."""
    return _queue_labelling(warehouse, scheduler, city, "new")


@router.post("/{city}/existing", **LABEL_ROUTE)
def label_existing_city(
    city: CityDep, warehouse: WarehouseDep, scheduler: SchedulerDep
) -> LabelJobOut:
    """Queue labelling of the remaining unlabelled images of a supported city."""
    return _queue_labelling(warehouse, scheduler, city, "existing")
