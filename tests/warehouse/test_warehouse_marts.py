"""Contract: incremental mart refresh equals a full rebuild and only touches what changed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest
from sqlalchemy import func, select

from sightscan.detections import Box, Label
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.images import NewImage, add_images, set_labels
from sightscan.warehouse.marts import (
    city_overview,
    current_model,
    rebuild_marts,
    refresh_marts,
    supported_cities,
    training_images,
)
from sightscan.warehouse.models import LoadChange, MartCityModel, MartTrainingImage
from sightscan.warehouse.versions import add_model_version

MakeJpeg = Callable[[int], bytes]  # the `make_jpeg` fixture


def mart_snapshot(warehouse: Warehouse) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with warehouse.transaction() as session:
        training = [
            (r.image_id, r.city_id, r.sight, r.blob_key, r.width, r.height, r.labels, r.labelled,
             r.created_at)
            for r in session.scalars(select(MartTrainingImage).order_by(MartTrainingImage.image_id))
        ]
        models = [
            (r.city_id, r.city, r.version, r.model_id, r.blob_key)  # updated_at differs by design
            for r in session.scalars(select(MartCityModel).order_by(MartCityModel.city_id))
        ]
    return training, models


def add_city_images(warehouse: Warehouse, make_jpeg: MakeJpeg, city: str, seeds: range,
                    labelled: bool = True) -> list[int]:
    items = [
        NewImage(make_jpeg(seed), city, sight=f"Sight {seed % 2}",
                 labels=[Label(f"Sight {seed % 2}", Box(0.1, 0.1, 0.9, 0.8))] if labelled else [],
                 label_source="weak")
        for seed in seeds
    ]
    with warehouse.transaction() as session:
        return [r.image_id for r in add_images(session, warehouse.blobs, items)]


def publish(warehouse: Warehouse, city: str, payload: bytes) -> None:
    with warehouse.transaction() as session:
        add_model_version(session, warehouse.blobs, city=city, model_bytes=payload, metadata={},
                          metrics={})


def pending(warehouse: Warehouse) -> int:
    with warehouse.transaction() as session:
        return int(session.scalar(
            select(func.count()).select_from(LoadChange).where(LoadChange.refreshed.is_(False))
        ) or 0)


def test_training_mart_holds_images_with_labels_per_city(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    bonn = add_city_images(warehouse, make_jpeg, "Bonn", range(4))
    add_city_images(warehouse, make_jpeg, "Bonn", range(10, 12), labelled=False)
    add_city_images(warehouse, make_jpeg, "Köln", range(20, 23))
    with warehouse.transaction() as session:
        report = refresh_marts(session)
        city_id = get_or_create_city(session, "Bonn").id
        labelled = training_images(session, city_id=city_id)
        everything = training_images(session, city_id=city_id, labelled_only=False)
    assert (report.changes, report.images) == (9, 9)
    assert [row.image_id for row in labelled] == bonn
    assert len(everything) == 6
    first = labelled[0]
    assert first.sight == "Sight 0" and (first.width, first.height) == (24, 16)
    assert first.labels == [{"name": "Sight 0", "source": "weak", "box": [0.1, 0.1, 0.9, 0.8]}]


def test_current_model_mart_follows_the_newest_version(warehouse: Warehouse) -> None:
    publish(warehouse, "Bonn", b"b1")
    publish(warehouse, "Köln", b"k1")
    with warehouse.transaction() as session:
        refresh_marts(session)
    publish(warehouse, "Bonn", b"b2")
    with warehouse.transaction() as session:
        report = refresh_marts(session)
        assert report.cities_with_new_model == 1
        assert supported_cities(session) == ["BONN", "KÖLN"]
        bonn = current_model(session, "BONN")
        assert bonn is not None and bonn.version == 2
    assert warehouse.blobs.get(bonn.blob_key) == b"b2"


def test_a_city_without_a_model_is_not_supported(warehouse: Warehouse, make_jpeg: MakeJpeg) -> None:
    add_city_images(warehouse, make_jpeg, "Bonn", range(2))
    with warehouse.transaction() as session:
        refresh_marts(session)
        assert supported_cities(session) == []
        assert current_model(session, "BONN") is None


def test_refresh_processes_only_pending_changes(warehouse: Warehouse, make_jpeg: MakeJpeg) -> None:
    ids = add_city_images(warehouse, make_jpeg, "Bonn", range(5))
    with warehouse.transaction() as session:
        assert refresh_marts(session).changes == 5
    assert pending(warehouse) == 0
    with warehouse.transaction() as session:
        assert refresh_marts(session).changes == 0
        set_labels(session, image_id=ids[2], labels=[], source="weak")
    with warehouse.transaction() as session:
        report = refresh_marts(session)
        assert (report.changes, report.images, report.cities_with_new_model) == (1, 1, 0)
        row = session.get(MartTrainingImage, ids[2])
        assert row is not None and not row.labelled and row.labels == []


def test_refresh_in_small_batches_consumes_everything(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    add_city_images(warehouse, make_jpeg, "Bonn", range(7))
    with warehouse.transaction() as session:
        report = refresh_marts(session, batch=3)
    assert (report.changes, report.images) == (7, 7)
    assert pending(warehouse) == 0


def test_incremental_refreshes_equal_a_full_rebuild(
    warehouse: Warehouse, make_jpeg: MakeJpeg
) -> None:
    ids = add_city_images(warehouse, make_jpeg, "Bonn", range(6))
    publish(warehouse, "Bonn", b"b1")
    with warehouse.transaction() as session:
        refresh_marts(session)
    add_city_images(warehouse, make_jpeg, "Köln", range(30, 34), labelled=False)
    add_city_images(warehouse, make_jpeg, "Bonn", range(3, 9))  # 3 duplicates, 3 new
    with warehouse.transaction() as session:
        set_labels(session, image_id=ids[0], labels=[Label("Münster", Box(0, 0, 0.5, 0.5))],
                   source="user")
        set_labels(session, image_id=ids[1], labels=[], source="weak")
    publish(warehouse, "Bonn", b"b2")
    publish(warehouse, "Köln", b"k1")
    with warehouse.transaction() as session:
        report = refresh_marts(session)
    assert report.images == 4 + 3 + 2
    incremental = mart_snapshot(warehouse)
    with warehouse.transaction() as session:
        rebuild_marts(session)
    assert mart_snapshot(warehouse) == incremental
    assert len(incremental[0]) == 13 and [m[2] for m in incremental[1]] == [2, 1]


def test_city_overview_counts_from_the_marts(warehouse: Warehouse, make_jpeg: MakeJpeg) -> None:
    add_city_images(warehouse, make_jpeg, "Bonn", range(3))
    add_city_images(warehouse, make_jpeg, "Bonn", range(10, 12), labelled=False)
    publish(warehouse, "Bonn", b"b1")
    with warehouse.transaction() as session:
        refresh_marts(session)
        overview = {o.city: o for o in city_overview(session)}
    bonn = overview["BONN"]
    assert (bonn.images, bonn.labelled_images, bonn.labels, bonn.model_version) == (5, 3, 3, 1)


def test_two_refreshes_of_one_image_at_once_keep_both_labels(
    warehouse: Warehouse, make_jpeg: MakeJpeg, backend: str
) -> None:
    """Two stages label the same photo and refresh the marts at the same time (two label
    stages do): the later refresh waits for the earlier one instead of inserting the same
    mart row twice, and the row ends with both labels."""
    if backend != "postgresql":
        pytest.skip("SQLite serialises whole transactions")
    [image_id] = add_city_images(warehouse, make_jpeg, "Testville", range(1), labelled=False)
    with warehouse.transaction() as session:
        refresh_marts(session)
    errors: list[BaseException] = []

    def second_stage() -> None:
        try:
            with warehouse.transaction() as session:
                set_labels(session, image_id=image_id, source="user",
                           labels=[Label("Sight 1", Box(0.2, 0.2, 0.8, 0.8))])
                refresh_marts(session)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    with ExitStack() as first_stage:
        session = first_stage.enter_context(warehouse.transaction())
        set_labels(session, image_id=image_id, source="weak",
                   labels=[Label("Sight 0", Box(0.1, 0.1, 0.9, 0.9))])
        refresh_marts(session)
        thread = threading.Thread(target=second_stage)
        thread.start()
        thread.join(timeout=2)  # the second refresh waits on the first, still open
        assert thread.is_alive()
    thread.join(timeout=30)  # the first committed: the second goes on
    assert errors == []
    with warehouse.transaction() as session:
        [row] = training_images(session, city_id=get_or_create_city(session, "Testville").id)
        assert sorted(label["name"] for label in row.labels) == ["Sight 0", "Sight 1"]
