"""Pipeline job status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from sightscan.api.deps import OptionalCityDep, WarehouseDep
from sightscan.api.schemas import JobsOut
from sightscan.warehouse.cloud import gpu_events
from sightscan.warehouse.jobs import list_jobs

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("", response_model=JobsOut)
def jobs(
    warehouse: WarehouseDep,
    name: OptionalCityDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest jobs first (crawl, label, train), with state, reason and counts; and the
    on-demand GPU instance's latest starts, stops and errors (null when it never ran)."""
    with warehouse.transaction() as session:
        listed = [job.as_dict() for job in list_jobs(session, city=name, limit=limit)]
        events = gpu_events(session, limit=10)
    return {"jobs": listed, "gpu_instance": {"events": events} if events else None}
