"""The model registry's serving side: a city's current model in the warehouse, as a Detector.

The server's stages (weak labelling, the quality gate) and the local `sightscan detect`
open the current model here; `sightscan.client` only downloads models from a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sightscan.cities import normalise_city
from sightscan.errors import NotFoundError
from sightscan.inference import Detector
from sightscan.warehouse.marts import current_model, refresh_marts

if TYPE_CHECKING:
    from sightscan.warehouse import Warehouse


def warehouse_detector(warehouse: Warehouse, city: str) -> Detector | None:
    """The detector of a (normalised) city's current model in the warehouse, or None."""
    with warehouse.transaction() as session:
        model = current_model(session, city)
    return None if model is None else Detector.from_bytes(warehouse.blobs.get(model.blob_key))


def current_detector(warehouse: Warehouse, city: str) -> Detector:
    """The city's current model after a mart refresh; NotFoundError saying how to get one."""
    name = normalise_city(city)
    with warehouse.transaction() as session:
        refresh_marts(session)
    detector = warehouse_detector(warehouse, name)
    if detector is None:
        raise NotFoundError(f"no model for {name}: run `sightscan train {name}` first")
    return detector
