"""An operator's view of a published model's open-set gate, and moving it without retraining.

The gate's threshold and margins are calibrated so that at most 3% of a city's own photos
lose their sight (rejection.py). An operator may prefer another trade: a fixed negatives'
margin of 0.05 refuses more other landmarks and loses a few more of the city's own photos
(docs/detector.md, tenth round). `move_gate` publishes the newest model with the gate moved
as the city's next version, so every client picks it up at its next update check; the
version it was moved from stays stored, and moving the gate back is one more call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from sightscan.errors import InvalidInputError, NotFoundError
from sightscan.training.export import read_metadata, set_metadata, set_rejection_threshold
from sightscan.training.rejection import DISABLED, NO_RIVAL_RULE
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city
from sightscan.warehouse.marts import refresh_marts
from sightscan.warehouse.models import City
from sightscan.warehouse.versions import ModelVersion, add_model_version, latest_model_version


@dataclass(frozen=True, slots=True)
class GateSettings:
    """A model version's gate as its metadata records it."""

    city: str
    version: int
    thresholds: dict[str, float]  # per sight
    rival_margin: float | None  # None: a model from before the margin existed
    negative_margin: float | None
    calibration_lost: int | None  # the city's calibration photos the calibrated gate loses
    calibrated_on: int | None
    moved_from: int | None  # the version whose gate an operator moved, if one did

    def summary(self) -> list[str]:
        """Lines for a terminal."""
        lines = [f"{self.city} model version {self.version}"
                 + (f" (gate moved from version {self.moved_from})" if self.moved_from else "")]
        lines += [f"  threshold {value:+.4f}  {sight}" for sight, value in self.thresholds.items()]
        for name, value in (("rival margin", self.rival_margin),
                            ("negatives' margin", self.negative_margin)):
            lines.append(f"  {name} " + ("-" if value is None else
                                          "off" if value >= NO_RIVAL_RULE else f"{value:.4f}"))
        if self.calibrated_on:
            lines.append(f"  calibration: {self.calibration_lost} of {self.calibrated_on} of "
                         "the city's photos lose their sight at the calibrated setting")
        return lines


def _settings(city: str, version: ModelVersion, model: bytes) -> GateSettings:
    metadata = read_metadata(model)
    rejection: dict[str, Any] = metadata.get("rejection") or {}
    if "thresholds" not in rejection:
        raise NotFoundError(f"the model of {city} (version {version.version}) has no open-set "
                            "gate: train the city again to get one")
    names = metadata.get("class_names") or []
    return GateSettings(
        city, version.version, dict(zip(names, rejection["thresholds"], strict=False)),
        rejection.get("rival_margin"), rejection.get("negative_margin"),
        rejection.get("calibration_lost"), rejection.get("calibrated_on"),
        rejection.get("moved_from_version"))


def _newest(session: Session, warehouse: Warehouse, city: str
            ) -> tuple[City, ModelVersion, bytes]:
    row = find_city(session, city)
    latest = latest_model_version(session, city_id=row.id)
    if latest is None:
        raise NotFoundError(f"{row.name} has no model yet: train it first")
    return row, latest, warehouse.blobs.get(latest.blob_key)


def current_gate(warehouse: Warehouse, city: str) -> GateSettings:
    """The gate of the city's newest model; NotFoundError without a model or a gate."""
    with warehouse.transaction() as session:
        row, latest, model = _newest(session, warehouse, city)
        return _settings(row.name, latest, model)


def _check(value: float | None, low: float, high: float, name: str) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidInputError(f"{name} must be between {low:g} and {high:g}, got {value:g}")


def move_gate(warehouse: Warehouse, city: str, *, threshold: float | None = None,
              rival_margin: float | None = None, negative_margin: float | None = None
              ) -> GateSettings:
    """Publish the city's newest model with its gate moved as the next version.

    `threshold` applies to every sight (-2 lets every photo through, the rival rules too
    unless a margin is given), a margin of 8 turns its rule off. Values left out keep the
    current ones. The stored metrics are the moved-from version's: they were measured
    with the calibrated gate.
    """
    if threshold is None and rival_margin is None and negative_margin is None:
        raise InvalidInputError("give a threshold, a rival margin or a negatives' margin")
    _check(threshold, DISABLED, 1.0, "the threshold")
    _check(rival_margin, 0.0, NO_RIVAL_RULE, "the rival margin")
    _check(negative_margin, 0.0, NO_RIVAL_RULE, "the negatives' margin")
    with warehouse.transaction() as session:
        row, latest, model = _newest(session, warehouse, city)
        current = _settings(row.name, latest, model)
        moved = set_rejection_threshold(
            model, list(current.thresholds.values()) if threshold is None else threshold,
            rival_margin=rival_margin, negative_margin=negative_margin)
        metadata = read_metadata(moved)
        metadata["rejection"]["moved_from_version"] = latest.version
        metadata["version"] = latest.version + 1
        moved = set_metadata(moved, metadata)
        published = add_model_version(
            session, warehouse.blobs, city=row.name, model_bytes=moved, metadata=metadata,
            metrics=latest.metrics, labelled_images=latest.labelled_images,
            after_version=latest.version)
        refresh_marts(session)
        return _settings(row.name, published, moved)

