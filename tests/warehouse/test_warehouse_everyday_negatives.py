"""SIGHTSCAN_NEGATIVES_DIR: an operator's everyday photos join every city's training negatives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from sightscan.config import load_settings
from sightscan.detections import Box, Label
from sightscan.storage import BlobStore
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city
from sightscan.warehouse.images import NewImage, add_images
from sightscan.warehouse.marts import refresh_marts

pytest.importorskip("torch", reason="the training extra is not installed")

from sightscan.training.service import load_training_images  # noqa: E402


def test_everyday_photos_from_the_folder_are_added_as_unlabelled_negatives(
        warehouse_engine: Engine, blob_store: BlobStore, tmp_path: Path,
        make_jpeg: Callable[..., bytes]) -> None:
    everyday = tmp_path / "everyday"
    everyday.mkdir()
    for k in range(6):
        (everyday / f"scene{k}.jpg").write_bytes(make_jpeg(1000 + k))
    settings = load_settings(sightscan_data_dir=tmp_path, sightscan_negatives_dir=everyday)
    warehouse = Warehouse(warehouse_engine, blob_store, settings)
    sights = [NewImage(make_jpeg(k), "Alonetown", sight=f"Sight {k % 2}",
                       labels=[Label(f"Sight {k % 2}", Box(0.0, 0.0, 1.0, 1.0))],
                       label_source="weak") for k in range(8)]
    with warehouse.transaction() as session:
        add_images(session, warehouse.blobs, sights)
    with warehouse.transaction() as session:
        refresh_marts(session)
        city_id = find_city(session, "Alonetown").id
    images = load_training_images(warehouse, city_id)
    negatives = [im for im in images if not im.labels]
    assert [im.key for im in negatives] == ["everyday:scene0.jpg", "everyday:scene3.jpg"]
    assert negatives[0].load() == make_jpeg(1000)
    assert sum(1 for im in images if im.labels) == 8
