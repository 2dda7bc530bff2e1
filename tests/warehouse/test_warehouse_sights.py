"""Contract: a sight's description and link are kept on dim_sight, first non-empty wins."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from sightscan.warehouse import Warehouse
from sightscan.warehouse.images import NewImage, add_image
from sightscan.warehouse.models import Sight
from sightscan.warehouse.sights import SightInfo, keep_sight_info


def _stored(warehouse: Warehouse) -> dict[str, tuple[str | None, str | None]]:
    with warehouse.transaction() as session:
        rows = session.execute(select(Sight.name, Sight.description, Sight.url)).all()
    return {name: (description, url) for name, description, url in rows}


def test_the_first_non_empty_description_and_link_are_kept(
        warehouse: Warehouse, make_jpeg: Callable[..., bytes]) -> None:
    with warehouse.transaction() as session:
        add_image(session, warehouse.blobs,
                  NewImage(data=make_jpeg(1), city="Paris", sight="Eiffel Tower", origin="crawler"))
    gate = "https://en.wikipedia.org/wiki/Eiffel_Tower"
    with warehouse.transaction() as session:
        changed = keep_sight_info(session, " paris", [
            SightInfo("Eiffel  Tower", None, gate),  # spelt with other spaces: same sight
            SightInfo("Louvre", "museum", "https://louvre.example/"),  # no photo: no row
        ])
    assert changed == 1
    assert _stored(warehouse) == {"Eiffel Tower": (None, gate)}
    with warehouse.transaction() as session:
        keep_sight_info(session, "PARIS", [
            SightInfo("Eiffel Tower", "tower in Paris", "https://other.example/")])
        keep_sight_info(session, "PARIS", [SightInfo("Eiffel Tower", "  ", None)])
        keep_sight_info(session, "PARIS", [SightInfo("Eiffel Tower", "later text", None)])
        assert keep_sight_info(session, "PARIS", []) == 0
    assert _stored(warehouse) == {"Eiffel Tower": ("tower in Paris", gate)}
