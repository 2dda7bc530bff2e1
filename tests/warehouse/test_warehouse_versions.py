"""Contract: model versions 1, 2, 3… per city, atomic with their blobs."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from sightscan.errors import StorageError
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import get_or_create_city
from sightscan.warehouse.models import ModelRow
from sightscan.warehouse.versions import add_model_version, latest_model_version, model_versions


def publish(warehouse: Warehouse, city: str, payload: bytes) -> int:
    with warehouse.transaction() as session:
        return add_model_version(session, warehouse.blobs, city=city, model_bytes=payload,
                                 metadata={"labels": ["A"]}, metrics={"map50": 0.5}).version


def versions_of(warehouse: Warehouse, city: str) -> list[int]:
    with warehouse.transaction() as session:
        city_id = get_or_create_city(session, city).id
        return [v.version for v in model_versions(session, city_id=city_id)]


def test_versions_count_up_per_city_independently(warehouse: Warehouse) -> None:
    assert [publish(warehouse, "Bonn", b"bonn-%d" % i) for i in range(3)] == [1, 2, 3]
    assert [publish(warehouse, "Köln", b"koeln-%d" % i) for i in range(2)] == [1, 2]
    assert versions_of(warehouse, "Bonn") == [3, 2, 1]


def test_latest_version_carries_blob_metadata_and_metrics(warehouse: Warehouse) -> None:
    publish(warehouse, "Bonn", b"first")
    publish(warehouse, "Bonn", b"second")
    with warehouse.transaction() as session:
        city_id = get_or_create_city(session, "Bonn").id
        latest = latest_model_version(session, city_id=city_id)
    assert latest is not None and latest.version == 2
    assert warehouse.blobs.get(latest.blob_key) == b"second"
    assert latest.metadata == {"labels": ["A"]} and latest.metrics == {"map50": 0.5}


def test_latest_version_of_a_city_without_models_is_none(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        city_id = get_or_create_city(session, "Bonn").id
        assert latest_model_version(session, city_id=city_id) is None


def test_failure_after_the_blob_write_leaves_no_version_and_the_next_number_is_right(
    warehouse: Warehouse,
) -> None:
    publish(warehouse, "Bonn", b"v1")  # the city exists before the failing publish
    crash = pytest.raises(RuntimeError, match="evaluation crashed")
    with crash, warehouse.transaction() as session:
        add_model_version(session, warehouse.blobs, city="Bonn", model_bytes=b"doomed",
                          metadata={}, metrics={})
        raise RuntimeError("evaluation crashed after the insert")
    assert versions_of(warehouse, "Bonn") == [1]
    assert publish(warehouse, "Bonn", b"v2") == 2


def test_a_failing_blob_write_stores_no_version(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_put(data: bytes) -> str:
        raise StorageError("disk full")

    monkeypatch.setattr(warehouse.blobs, "put", broken_put)
    with pytest.raises(StorageError):
        publish(warehouse, "Bonn", b"v1")
    monkeypatch.undo()
    assert versions_of(warehouse, "Bonn") == []
    assert publish(warehouse, "Bonn", b"v1") == 1


def test_every_version_row_has_its_blob(warehouse: Warehouse) -> None:
    for i in range(3):
        publish(warehouse, "Bonn", b"model %d" % i)
    with warehouse.transaction() as session:
        keys = session.scalars(select(ModelRow.blob_key)).all()
    assert len(keys) == 3
    assert all(warehouse.blobs.exists(key) for key in keys)


def test_concurrent_publishers_get_distinct_consecutive_numbers(warehouse: Warehouse) -> None:
    publish(warehouse, "Bonn", b"v1")
    barrier = threading.Barrier(6)

    def publisher(i: int) -> int | None:
        barrier.wait()
        try:
            return publish(warehouse, "Bonn", b"parallel %d" % i)
        except RuntimeError:  # a clean failure is allowed: nothing of it remains
            return None

    with ThreadPoolExecutor(6) as pool:
        numbers = [n for n in pool.map(publisher, range(6)) if n is not None]
    assert len(numbers) == len(set(numbers))
    assert sorted(numbers) == list(range(2, 2 + len(numbers)))
    assert len(numbers) == 6  # the row lock / write lock serialises publishers
    assert versions_of(warehouse, "Bonn") == list(range(len(numbers) + 1, 0, -1))
