"""What each sight is: the description and link discovery found, kept on dim_sight.

The first non-empty value wins: a later crawl (or another provider) never overwrites what
is kept, and an empty value never clears it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from sightscan.cities import normalise_city
from sightscan.warehouse.models import City, Sight

MAX_URL = 2000  # dim_sight.url's width


@dataclass(frozen=True, slots=True)
class SightInfo:
    """A sight's name as discovery spelt it, its short description and a link (each optional)."""

    name: str
    description: str | None = None
    url: str | None = None


def keep_sight_info(session: Session, city: str, infos: Iterable[SightInfo]) -> int:
    """Fill the empty description/url of the city's stored sights; returns the sights changed.

    Sights are matched by their stored name (whitespace collapsed, as photos store it); a
    sight without a row yet (no photo stored) is left for a later crawl.
    """
    wanted: dict[str, SightInfo] = {}
    for info in infos:
        name = " ".join(info.name.split())[:200]
        description = (info.description or "").strip() or None
        url = info.url if info.url and len(info.url) <= MAX_URL else None
        if name and (description or url) and name not in wanted:
            wanted[name] = SightInfo(name, description, url)
    if not wanted:
        return 0
    rows = session.scalars(
        select(Sight)
        .join(City, City.id == Sight.city_id)
        .where(City.name == normalise_city(city), Sight.name.in_(sorted(wanted)))
    ).all()
    changed = 0
    for row in rows:
        info = wanted[row.name]
        updated = False
        if not row.description and info.description:
            row.description, updated = info.description, True
        if not row.url and info.url:
            row.url, updated = info.url, True
        changed += updated
    return changed

