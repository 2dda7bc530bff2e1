"""Moving a published model's gate: a new version, the old one kept, never over a newer one."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest

from gated_model import gated_model_bytes
from sightscan.errors import ConflictError, InvalidInputError, NotFoundError
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city, get_or_create_city
from sightscan.warehouse.versions import add_model_version, latest_model_version, model_versions

pytest.importorskip("torch")

from sightscan.training.gate_settings import (  # noqa: E402  (needs torch: export)
    current_gate,
    move_gate,
)


@pytest.fixture(scope="module")
def gated() -> bytes:
    return gated_model_bytes(["Colosseum", "Pantheon"])


@pytest.fixture
def published(warehouse: Warehouse, gated: bytes) -> bytes:
    with warehouse.transaction() as session:
        add_model_version(session, warehouse.blobs, city="Rome", model_bytes=gated,
                          metadata={"version": 1}, metrics={"map50": 0.9}, labelled_images=7)
    return gated


def _graph_values(model: bytes, name: str) -> list[float]:
    found = next(t for t in onnx.load_from_string(model).graph.initializer if t.name == name)
    values: list[float] = onnx.numpy_helper.to_array(found).tolist()
    return values


def _newest_bytes(warehouse: Warehouse) -> tuple[int, bytes, dict[str, Any], int]:
    with warehouse.transaction() as session:
        latest = latest_model_version(session, city_id=find_city(session, "Rome").id)
        assert latest is not None
        return (latest.version, warehouse.blobs.get(latest.blob_key), latest.metrics,
                latest.labelled_images)


def test_the_gate_of_the_newest_model_is_read_from_its_metadata(
        warehouse: Warehouse, published: bytes) -> None:
    settings = current_gate(warehouse, "rome")
    assert settings.version == 1 and settings.moved_from is None
    assert settings.thresholds == {"Colosseum": pytest.approx(0.3), "Pantheon": pytest.approx(0.3)}
    assert settings.rival_margin == pytest.approx(0.1)
    assert settings.negative_margin == pytest.approx(0.2)


def test_moving_a_margin_publishes_the_same_model_with_it_as_the_next_version(
        warehouse: Warehouse, published: bytes) -> None:
    settings = move_gate(warehouse, "Rome", negative_margin=0.05)
    version, model, metrics, labelled = _newest_bytes(warehouse)
    assert settings.version == version == 2 and settings.moved_from == 1
    assert _graph_values(model, "gate.margins") == pytest.approx([0.1, 0.05])
    assert _graph_values(model, "gate.rejection_threshold") == pytest.approx([0.3, 0.3])
    assert (metrics, labelled) == ({"map50": 0.9}, 7)  # measured before the move: kept
    # the rest of the graph is the published one, byte for byte
    before = {t.name: t.raw_data for t in onnx.load_from_string(published).graph.initializer}
    after = {t.name: t.raw_data for t in onnx.load_from_string(model).graph.initializer}
    assert [n for n in before if before[n] != after[n]] == ["gate.margins"]
    with warehouse.transaction() as session:
        versions = model_versions(session, city_id=find_city(session, "Rome").id)
        assert warehouse.blobs.get(versions[-1].blob_key) == published  # version 1 kept


def test_a_threshold_moves_every_sight_and_an_open_gate_lets_all_through(
        warehouse: Warehouse, published: bytes) -> None:
    move_gate(warehouse, "Rome", threshold=0.5)
    assert _graph_values(_newest_bytes(warehouse)[1], "gate.rejection_threshold") == \
        pytest.approx([0.5, 0.5])
    opened = move_gate(warehouse, "Rome", threshold=-2)
    assert opened.version == 3 and opened.moved_from == 2
    assert np.array(_graph_values(_newest_bytes(warehouse)[1], "gate.margins")).min() >= 8


@pytest.mark.parametrize("options", [{}, {"threshold": 1.5}, {"threshold": -3.0},
                                     {"rival_margin": -0.1}, {"negative_margin": 9.0}])
def test_a_setting_out_of_range_is_refused_and_nothing_is_published(
        warehouse: Warehouse, published: bytes, options: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        move_gate(warehouse, "Rome", **options)
    assert _newest_bytes(warehouse)[0] == 1


def test_an_unknown_city_a_city_without_a_model_and_a_model_without_a_gate_are_named(
        warehouse: Warehouse) -> None:
    from sightscan.training.export import base_metadata, export_onnx
    from sightscan.training.model import SightNet

    with pytest.raises(NotFoundError, match="unknown city"):
        current_gate(warehouse, "Atlantis")
    plain = export_onnx(SightNet(1, 64, pretrained=False, frozen_blocks=3).eval(),
                        base_metadata(["Louvre"], 64))
    with warehouse.transaction() as session:
        get_or_create_city(session, "Oslo")
        add_model_version(session, warehouse.blobs, city="Paris", model_bytes=plain,
                          metadata={}, metrics={})
    with pytest.raises(NotFoundError, match="no model yet"):
        move_gate(warehouse, "Oslo", threshold=0.5)
    with pytest.raises(NotFoundError, match="no open-set gate"):
        move_gate(warehouse, "Paris", threshold=0.5)


def test_a_version_published_meanwhile_is_never_overwritten_by_a_moved_gate(
        warehouse: Warehouse, published: bytes) -> None:
    with warehouse.transaction() as session:
        add_model_version(session, warehouse.blobs, city="Rome", model_bytes=published,
                          metadata={"version": 2}, metrics={})
    # a gate moved from version 1 (read before version 2 came) must not be published
    with warehouse.transaction() as session, pytest.raises(ConflictError, match="run again"):
        add_model_version(session, warehouse.blobs, city="Rome", model_bytes=published,
                          metadata={}, metrics={}, after_version=1)
    assert _newest_bytes(warehouse)[0] == 2
