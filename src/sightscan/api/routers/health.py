"""Liveness and database reachability for load balancers and `sightscan up`."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from sightscan.api.deps import WarehouseDep
from sightscan.api.schemas import HealthOut

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health(warehouse: WarehouseDep) -> JSONResponse:
    """{"status": "ok", "database": "ok"}, or 503 when the database does not answer."""
    try:
        with warehouse.engine.connect() as connection:
            connection.execute(select(1))
    except SQLAlchemyError as exc:
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return JSONResponse({"status": "degraded", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
