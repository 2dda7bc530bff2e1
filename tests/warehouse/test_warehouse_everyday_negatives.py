"""Everyday photos (the warehouse's everyday pool, SIGHTSCAN_NEGATIVES_DIR) join every city's
training negatives, a city alone in its warehouse too."""

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
from sightscan.warehouse.everyday import EverydayPhoto, add_everyday_photos
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


def _alone_with_pool(warehouse: Warehouse, make_jpeg: Callable[..., bytes], pool: int) -> int:
    """Eight labelled photos of the only city, and `pool` photos in the everyday pool."""
    sights = [NewImage(make_jpeg(k), "Alonetown", sight=f"Sight {k % 2}",
                       labels=[Label(f"Sight {k % 2}", Box(0.0, 0.0, 1.0, 1.0))],
                       label_source="weak") for k in range(8)]
    everyday = [EverydayPhoto(make_jpeg(2000 + k), "Quality images of food",
                              f"https://upload.example/{k}.jpg", "CC0", "Jane")
                for k in range(pool)]
    with warehouse.transaction() as session:
        add_images(session, warehouse.blobs, sights)
        add_everyday_photos(session, warehouse.blobs, everyday)
    with warehouse.transaction() as session:
        refresh_marts(session)
        return find_city(session, "Alonetown").id


def test_the_everyday_pool_gives_negatives_to_a_city_alone_in_its_warehouse(
        warehouse_engine: Engine, blob_store: BlobStore, tmp_path: Path,
        make_jpeg: Callable[..., bytes]) -> None:
    warehouse = Warehouse(warehouse_engine, blob_store, load_settings(sightscan_data_dir=tmp_path))
    city_id = _alone_with_pool(warehouse, make_jpeg, pool=6)
    images = load_training_images(warehouse, city_id)
    everyday = [im for im in images if im.key.startswith("everyday:")]
    assert len(everyday) == 2  # a quarter of the 8 city photos
    assert all(not im.labels for im in everyday)
    assert {im.load() for im in everyday} <= {make_jpeg(2000 + k) for k in range(6)}
    assert sum(1 for im in images if im.labels) == 8


def test_the_pool_and_an_operators_folder_share_the_everyday_negatives(
        warehouse_engine: Engine, blob_store: BlobStore, tmp_path: Path,
        make_jpeg: Callable[..., bytes]) -> None:
    folder = tmp_path / "everyday"
    folder.mkdir()
    for k in range(4):
        (folder / f"scene{k}.jpg").write_bytes(make_jpeg(1000 + k))
    settings = load_settings(sightscan_data_dir=tmp_path, sightscan_negatives_dir=folder)
    warehouse = Warehouse(warehouse_engine, blob_store, settings)
    city_id = _alone_with_pool(warehouse, make_jpeg, pool=4)
    keys = [im.key for im in load_training_images(warehouse, city_id)
            if im.key.startswith("everyday:")]
    assert len(keys) == 2
    assert keys[0].startswith("everyday:pool/") and keys[1] == "everyday:scene0.jpg"
