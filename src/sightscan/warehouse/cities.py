"""Cities, city requests and the per-city cap on paid Vision calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from sightscan.cities import normalise_city
from sightscan.errors import NotFoundError, QuotaExceededError, UnknownCityError
from sightscan.warehouse._sql import rowcount, upsert_insert
from sightscan.warehouse.models import (
    City,
    CityRequest,
    CityRequestClient,
    VisionCalls,
    utcnow,
)


def get_or_create_city(session: Session, name: str) -> City:
    """The city row for a (raw) name, created when new."""
    normalised = normalise_city(name)
    city = session.scalar(select(City).where(City.name == normalised))
    if city is not None:
        return city
    session.execute(
        upsert_insert(session, City.__table__)
        .values(name=normalised, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return session.scalars(select(City).where(City.name == normalised)).one()


def find_city(session: Session, name: str) -> City:
    """The city row for a (raw) name; NotFoundError when unknown."""
    normalised = normalise_city(name)
    city = session.scalar(select(City).where(City.name == normalised))
    if city is None:
        raise NotFoundError(f"unknown city {normalised!r}")
    return city


@dataclass(frozen=True, slots=True)
class CityRequestResult:
    """The state of a city's requests after one more."""

    city: str
    count: int
    crawl_started: bool  # True exactly once: for the request that crossed the threshold


def request_city(
    session: Session,
    *,
    city: str,
    threshold: int,
    force: bool = False,
    photo_folder: str | None = None,
    sights: list[str] | None = None,
    client_hash: str | None = None,
    max_cities_per_client: int | None = None,
) -> CityRequestResult:
    """Count a request for a city; report whether this request starts the crawl.

    With `client_hash` (public requests) only a client's first request for a city counts,
    so the threshold is one of distinct clients, and a client may ask for at most
    `max_cities_per_client` cities a day (QuotaExceededError, nothing stored); without
    it (operators) every request counts.
    """
    now = utcnow()
    counted = True
    if client_hash is not None:
        counted = _count_client(
            session, city=city, client_hash=client_hash, cap=max_cities_per_client
        )
    row = get_or_create_city(session, city)
    if counted and client_hash is not None:
        inserted = session.execute(
            upsert_insert(session, CityRequestClient.__table__)
            .values(city_id=row.id, client_hash=client_hash, requested_at=now)
            .on_conflict_do_nothing(index_elements=["city_id", "client_hash"])
            .returning(CityRequestClient.__table__.c.client_hash)
        )
        counted = inserted.first() is not None  # else a concurrent twin got there first
    stmt = upsert_insert(session, CityRequest.__table__).values(
        city_id=row.id,
        count=1 if counted else 0,
        first_requested_at=now,
        last_requested_at=now,
        photo_folder=photo_folder,
        sights=sights,
    )
    updates: dict[str, object] = {
        "count": CityRequest.__table__.c.count + (1 if counted else 0),
        "last_requested_at": now,
    }
    if photo_folder is not None:
        updates["photo_folder"] = photo_folder
    if sights is not None:
        updates["sights"] = sights
    session.execute(stmt.on_conflict_do_update(index_elements=["city_id"], set_=updates))
    # The conditional update is the once-only switch, safe across processes.
    condition: ColumnElement[bool] = CityRequest.crawl_queued_at.is_(None)
    if not force:
        condition = condition & (CityRequest.count >= threshold)
    switched = session.execute(
        update(CityRequest)
        .where(CityRequest.city_id == row.id, condition)
        .values(crawl_queued_at=now)
        .execution_options(synchronize_session=False)
    )
    started = rowcount(switched) == 1
    count = session.scalar(select(CityRequest.count).where(CityRequest.city_id == row.id)) or 0
    return CityRequestResult(row.name, count, started)


def _count_client(
    session: Session, *, city: str, client_hash: str, cap: int | None
) -> bool:
    """Whether this client's request is new for the city; refuse a client over its daily cap."""
    existing = session.scalar(select(City.id).where(City.name == normalise_city(city)))
    if existing is not None:
        seen = session.scalar(
            select(func.count())
            .select_from(CityRequestClient)
            .where(
                CityRequestClient.city_id == existing,
                CityRequestClient.client_hash == client_hash,
            )
        )
        if seen:
            return False
    if cap is not None:
        since = utcnow() - timedelta(days=1)
        recent = session.scalar(
            select(func.count())
            .select_from(CityRequestClient)
            .where(
                CityRequestClient.client_hash == client_hash,
                CityRequestClient.requested_at >= since,
            )
        )
        if (recent or 0) >= cap:
            raise QuotaExceededError(
                f"too many city requests: one client may ask for at most {cap} cities a day"
            )
    return True


def city_request(session: Session, city_id: int) -> CityRequest | None:
    """The request row of a city (photo folder, static sights), if any."""
    return session.get(CityRequest, city_id)


def reserve_vision_call(session: Session, *, city_id: int, cap: int) -> bool:
    """Reserve one paid Vision call for a city; False once `cap` calls were reserved.

    Commit right after: a reservation must survive the call it pays for, so the cap holds
    across restarts and parallel workers (the UPDATE ... WHERE calls < cap is atomic).
    """
    session.execute(
        upsert_insert(session, VisionCalls.__table__)
        .values(city_id=city_id, calls=0)
        .on_conflict_do_nothing(index_elements=["city_id"])
    )
    result = session.execute(
        update(VisionCalls)
        .where(VisionCalls.city_id == city_id, VisionCalls.calls < cap)
        .values(calls=VisionCalls.calls + 1)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def vision_calls_made(session: Session, city_id: int) -> int:
    """How many paid Vision calls a city has used."""
    return session.scalar(select(VisionCalls.calls).where(VisionCalls.city_id == city_id)) or 0


def resolve_city(session: Session, name: str, *, known_only: bool = False) -> str:
    """The city a (raw) name means: a city already stored under that name, else the
    gazetteer's key for it (MÜNCHEN, MUNICH -> MUNICH), else the normalised name.

    With `known_only` (public requests that create work or data) a name that is neither
    stored nor in the gazetteer raises UnknownCityError with the closest known names.
    Operator paths (API key with force, the CLI) pass False: their cities need no gazetteer.
    """
    from sightscan.gazetteer import get_gazetteer

    normalised = normalise_city(name)
    if session.scalar(select(City.id).where(City.name == normalised)) is not None:
        return normalised
    gazetteer = get_gazetteer()
    known = gazetteer.lookup(normalised)
    if known is not None:
        return known.key
    if known_only:
        raise UnknownCityError(name.strip(), gazetteer.suggestions(normalised))
    return normalised
