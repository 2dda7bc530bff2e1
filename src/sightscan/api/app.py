"""The FastAPI application (DOS): `create_app` wires settings, warehouse and scheduler.

Nothing happens at import time; `create_app()` opens (and migrates) the warehouse only
when none is given, and imports the Huey scheduler only when none is given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import sightscan
from sightscan.api.decoding import DecodeGate
from sightscan.api.errors import install_error_handlers
from sightscan.api.limits import BodyLimitMiddleware
from sightscan.api.openapi import install_openapi
from sightscan.api.ratelimit import SlidingWindowLimiter
from sightscan.api.routers import cities, detect, gazetteer, health, jobs, labelling, models
from sightscan.api.routers.detect import DetectorCache
from sightscan.api.routers.web import mount_web
from sightscan.config import Settings, get_settings
from sightscan.pipeline import Scheduler
from sightscan.warehouse import Warehouse

DESCRIPTION = (
    "Per-city sight detectors: list supported cities, download a city's model once and "
    "detect offline, send photos for training, ask for a new city. Endpoints that start "
    "paid or heavy work need the `X-API-Key` header."
)


def create_app(
    settings: Settings | None = None,
    *,
    warehouse: Warehouse | None = None,
    scheduler: Scheduler | None = None,
) -> FastAPI:
    """The API application; opens what is not given from `settings` (default: environment)."""
    settings = settings or get_settings()
    owns_warehouse = warehouse is None
    if warehouse is None:
        warehouse = Warehouse.from_settings(settings, migrate=True)
    if scheduler is None:
        from sightscan.tasks import HueyScheduler

        scheduler = HueyScheduler.from_settings(settings, warehouse)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_warehouse:
            warehouse.dispose()

    app = FastAPI(
        title="SightScan",
        version=sightscan.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,  # mount_web serves /docs from local assets (no CDN)
    )
    app.state.settings = settings
    app.state.warehouse = warehouse
    app.state.scheduler = scheduler
    app.state.detectors = DetectorCache()
    app.state.rate_limiter = SlidingWindowLimiter(settings.sightscan_rate_limit_per_minute, 60.0)
    app.state.key_failures = SlidingWindowLimiter(
        settings.sightscan_api_key_failures_per_minute, 60.0
    )
    app.state.decode_gate = DecodeGate(
        slots=settings.sightscan_max_concurrent_decodes,
        pixel_budget=settings.sightscan_decode_pixel_budget,
    )
    install_error_handlers(app)
    install_openapi(app)
    # Added last, so outermost: no route, dependency or parser sees an oversized body.
    app.add_middleware(
        BodyLimitMiddleware,
        max_file_bytes=settings.sightscan_max_upload_bytes,
        max_other_bytes=settings.sightscan_max_json_bytes,
    )
    # Order matters where paths overlap: GET /api/cities/logs before /api/cities/{city}.
    app.include_router(labelling.router)
    app.include_router(cities.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    app.include_router(detect.router)
    app.include_router(health.router)
    app.include_router(gazetteer.router)
    mount_web(app)  # GET / -> /app/, the offline client page
    return app
