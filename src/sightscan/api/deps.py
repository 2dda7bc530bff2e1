"""Dependencies shared by the routers: settings, warehouse, scheduler, city, API key, rate limit."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Query, Request, Security
from fastapi.security import APIKeyHeader

from sightscan.api.ratelimit import SlidingWindowLimiter
from sightscan.cities import MAX_CITY_LENGTH, normalise_city
from sightscan.config import Settings
from sightscan.errors import InvalidInputError
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


# What `normalise_city` accepts, for the document: at least one letter or digit, no '/'
# (a path segment), at most 100 characters. `normalise_city` stays the one check (400).
CITY_SCHEMA: dict[str, Any] = {"pattern": r"^[^/]*[^\W_][^/]*$", "maxLength": MAX_CITY_LENGTH}


def city_name(
    city: Annotated[
        str,
        Path(
            description="City name; normalised (upper case, letters, digits, space, '-' and '_').",
            json_schema_extra=CITY_SCHEMA,
        ),
    ],
    warehouse: Annotated[Warehouse, Depends(get_warehouse)],
) -> str:
    """The city of the path: a stored city of that normalised name, else the gazetteer's
    key for it (München -> MUNICH); InvalidInputError (400) when nothing usable is left."""
    _city(city)  # refuse junk before touching the database
    from sightscan.warehouse.cities import resolve_city

    with warehouse.transaction() as session:
        return resolve_city(session, city)


def _city(raw: str) -> str:
    # The API takes at most MAX_CITY_LENGTH characters as sent, as its document says;
    # `normalise_city` alone allows more raw text as long as the result is short enough.
    if len(raw) > MAX_CITY_LENGTH:
        raise InvalidInputError(
            f"expected a city name of at most {MAX_CITY_LENGTH} characters, got {len(raw)}"
        )
    return normalise_city(raw)


SettingsDep = Annotated[Settings, Depends(get_settings)]
WarehouseDep = Annotated[Warehouse, Depends(get_warehouse)]
SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]
CityDep = Annotated[str, Depends(city_name)]


def optional_city(
    city: Annotated[
        str | None, Query(description="Only this city.", json_schema_extra=CITY_SCHEMA)
    ] = None,
) -> str | None:
    """The normalised `?city=` filter, None when absent; 400 when unusable."""
    return _city(city) if city is not None else None


OptionalCityDep = Annotated[str | None, Depends(optional_city)]


def api_key_valid(settings: Settings, presented: str | None) -> bool:
    """Whether `presented` is the configured API key (constant-time comparison)."""
    if settings.sightscan_api_key is None or not presented:
        return False
    expected = settings.sightscan_api_key.get_secret_value().encode()
    return hmac.compare_digest(presented.encode(), expected)


def operator_key(request: Request, settings: Settings, presented: str | None) -> bool:
    """Whether the request carries the valid API key; every wrong key counts against its client.

    A client that sent more wrong keys than SIGHTSCAN_API_KEY_FAILURES_PER_MINUTE within
    the last minute gets 429 for any key, right or wrong, until its window clears: the key
    cannot be guessed faster than that.
    """
    if not presented:
        return False
    known: bool | None = getattr(request.state, "operator_key", None)
    if known is not None:  # several dependencies of one request ask: count it once
        return known
    failures: SlidingWindowLimiter = request.app.state.key_failures
    client = client_key(request)
    if failures.blocked(client):
        raise HTTPException(
            429,
            "too many wrong API keys from this client: retry in a minute",
            headers={"Retry-After": str(int(failures.window))},
        )
    valid = api_key_valid(settings, presented)
    if not valid:
        failures.hit(client)
    request.state.operator_key = valid
    return valid


def check_api_key(request: Request, settings: Settings, presented: str | None) -> None:
    """Raise 403 when no key is configured, 401 when none is sent, 403 when it is wrong."""
    if settings.sightscan_api_key is None or not settings.sightscan_api_key.get_secret_value():
        raise HTTPException(
            403, "this endpoint needs an API key, but SIGHTSCAN_API_KEY is not configured"
        )
    if not presented:
        raise HTTPException(401, f"missing API key: send it in the {API_KEY_HEADER} header")
    if not operator_key(request, settings, presented):
        raise HTTPException(403, "invalid API key")


PresentedKey = Annotated[str | None, Security(_api_key_header)]
OptionalKey = Annotated[
    str | None,
    Header(
        alias=API_KEY_HEADER,
        description="Operators only (SIGHTSCAN_API_KEY): lifts the rate limit and allows "
        "`force` and a crawl source. Wrong keys are limited per client.",
    ),
]


def require_api_key(
    request: Request, settings: SettingsDep, presented: PresentedKey = None
) -> None:
    """Dependency for endpoints that cost money or start work."""
    check_api_key(request, settings, presented)


def forwarded_client(
    peer: str,
    forwarded_for: Sequence[str],
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The client address: the rightmost X-Forwarded-For hop not added by a trusted proxy.

    Hops are only believed while the address they come from is a trusted proxy, so a
    client cannot choose its own address by sending the header itself.
    """
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = peer
    while hops and _is_trusted(client, trusted):
        client = hops.pop()
    return client


def _is_trusted(
    address: str, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_key(request: Request) -> str:
    """The rate-limit key of a request: the client address, behind trusted proxies only."""
    peer = request.client.host if request.client else "unknown"
    trusted = request.app.state.settings.trusted_proxy_networks
    if not trusted:
        return peer
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted)


def rate_limited(request: Request, settings: SettingsDep) -> None:
    """Dependency for public writes: 429 with Retry-After once the client's window is full.

    Requests with the valid API key (operators) are not limited; the key is read from the
    header here, not declared, so that public routes are not documented as needing it.
    """
    if operator_key(request, settings, request.headers.get(API_KEY_HEADER)):
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
