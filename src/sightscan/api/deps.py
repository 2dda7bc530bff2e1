"""Dependencies shared by the routers: settings, warehouse, scheduler, city, API key, rate limit."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import APIKeyHeader

from sightscan.api.ratelimit import SlidingWindowLimiter
from sightscan.cities import normalise_city
from sightscan.config import Settings
from sightscan.pipeline import Scheduler
from sightscan.warehouse import Warehouse

API_KEY_HEADER = "X-API-Key"
_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Operator key (SIGHTSCAN_API_KEY) for endpoints that cost money or start work.",
)


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_warehouse(request: Request) -> Warehouse:
    """The app's warehouse (database + blob store)."""
    warehouse: Warehouse = request.app.state.warehouse
    return warehouse


def get_scheduler(request: Request) -> Scheduler:
    """The app's scheduler (queues pipeline stages)."""
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


def city_name(
    city: Annotated[
        str,
        Path(
            description="City name; normalised (upper case, letters, digits, space, '-' and '_')."
        ),
    ],
    warehouse: Annotated[Warehouse, Depends(get_warehouse)],
) -> str:
    """The city of the path: a stored city of that normalised name, else the gazetteer's
    key for it (München -> MUNICH); InvalidInputError (400) when nothing usable is left."""
    normalise_city(city)  # refuse junk before touching the database
    from sightscan.warehouse.cities import resolve_city

    with warehouse.transaction() as session:
        return resolve_city(session, city)


SettingsDep = Annotated[Settings, Depends(get_settings)]
WarehouseDep = Annotated[Warehouse, Depends(get_warehouse)]
SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]
CityDep = Annotated[str, Depends(city_name)]


def api_key_valid(settings: Settings, presented: str | None) -> bool:
    """Whether `presented` is the configured API key (constant-time comparison)."""
    if settings.sightscan_api_key is None or not presented:
        return False
    expected = settings.sightscan_api_key.get_secret_value().encode()
    return hmac.compare_digest(presented.encode(), expected)


def check_api_key(settings: Settings, presented: str | None) -> None:
    """Raise 403 when no key is configured, 401 when none is sent, 403 when it is wrong."""
    if settings.sightscan_api_key is None or not settings.sightscan_api_key.get_secret_value():
        raise HTTPException(
            403, "this endpoint needs an API key, but SIGHTSCAN_API_KEY is not configured"
        )
    if not presented:
        raise HTTPException(401, f"missing API key: send it in the {API_KEY_HEADER} header")
    if not api_key_valid(settings, presented):
        raise HTTPException(403, "invalid API key")


def require_api_key(
    settings: SettingsDep, presented: Annotated[str | None, Security(_api_key_header)] = None
) -> None:
    """Dependency for endpoints that cost money or start work."""
    check_api_key(settings, presented)


PresentedKey = Annotated[str | None, Security(_api_key_header)]


def client_key(request: Request) -> str:
    """The rate-limit key of a request: the client address (set by uvicorn's proxy headers)."""
    return request.client.host if request.client else "unknown"


def rate_limited(request: Request, settings: SettingsDep, presented: PresentedKey = None) -> None:
    """Dependency for public writes: 429 with Retry-After once the client's window is full.

    Requests with the valid API key (operators) are not limited.
    """
    if api_key_valid(settings, presented):
        return
    limiter: SlidingWindowLimiter = request.app.state.rate_limiter
    decision = limiter.hit(client_key(request))
    if not decision.allowed:
        raise HTTPException(
            429,
            f"too many requests: at most {limiter.limit} per minute, retry in "
            f"{decision.retry_after} s",
            headers={"Retry-After": str(decision.retry_after)},
        )


ApiKeyRequired = Depends(require_api_key)
RateLimited = Depends(rate_limited)
