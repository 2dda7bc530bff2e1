"""Contract: cities, city requests, the once-only crawl switch and the Vision cap."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, inspect, select

from sightscan.errors import InvalidInputError, NotFoundError, QuotaExceededError
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import (
    find_city,
    get_or_create_city,
    request_city,
    reserve_vision_call,
    vision_calls_made,
)
from sightscan.warehouse.models import City, CityRequest


def test_get_or_create_city_normalises_and_returns_the_same_row(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        first = get_or_create_city(session, "  münchen ")
        again = get_or_create_city(session, "MÜNCHEN")
    assert first.id == again.id
    assert first.name == "MÜNCHEN"


def test_find_city_raises_not_found_for_unknown_city(warehouse: Warehouse) -> None:
    with pytest.raises(NotFoundError), warehouse.transaction() as session:
        find_city(session, "Atlantis")


def test_requests_are_counted_and_the_threshold_starts_the_crawl_once(warehouse: Warehouse) -> None:
    results = []
    for _ in range(5):
        with warehouse.transaction() as session:
            results.append(request_city(session, city="Bonn", threshold=3))
    assert [r.count for r in results] == [1, 2, 3, 4, 5]
    assert [r.crawl_started for r in results] == [False, False, True, False, False]
    assert {r.city for r in results} == {"BONN"}


def test_forced_request_starts_the_crawl_before_the_threshold(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        forced = request_city(session, city="Bonn", threshold=100, force=True,
                              photo_folder="/photos/bonn", sights=["Beethoven House"])
    with warehouse.transaction() as session:
        later = request_city(session, city="Bonn", threshold=1, force=True)
        row = session.scalar(select(CityRequest))
    assert forced.crawl_started and not later.crawl_started
    assert row is not None and row.photo_folder == "/photos/bonn"
    assert row.sights == ["Beethoven House"]


def test_requests_are_counted_per_city(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        request_city(session, city="Bonn", threshold=2)
        other = request_city(session, city="Köln", threshold=2)
    assert (other.count, other.crawl_started) == (1, False)


def test_parallel_requests_count_every_request_and_start_the_crawl_once(
    warehouse: Warehouse,
) -> None:
    barrier = threading.Barrier(8)

    def request(_: int) -> list[bool]:
        barrier.wait()
        started = []
        for _ in range(5):
            with warehouse.transaction() as session:
                started.append(request_city(session, city="Paris", threshold=10).crawl_started)
        return started

    with ThreadPoolExecutor(8) as pool:
        started = [flag for flags in pool.map(request, range(8)) for flag in flags]
    assert started.count(True) == 1
    with warehouse.transaction() as session:
        assert session.scalar(select(CityRequest.count)) == 40


def test_vision_cap_is_never_exceeded_by_parallel_workers(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        city_id = get_or_create_city(session, "Bonn").id
    barrier = threading.Barrier(8)

    def reserve(_: int) -> list[bool]:
        barrier.wait()
        granted = []
        for _ in range(20):
            with warehouse.transaction() as session:  # its own connection per thread
                granted.append(reserve_vision_call(session, city_id=city_id, cap=25))
        return granted

    with ThreadPoolExecutor(8) as pool:
        granted = [flag for flags in pool.map(reserve, range(8)) for flag in flags]
    assert granted.count(True) == 25
    with warehouse.transaction() as session:
        assert vision_calls_made(session, city_id) == 25


def test_vision_cap_is_per_city(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        bonn = get_or_create_city(session, "Bonn").id
        koeln = get_or_create_city(session, "Köln").id
        assert [reserve_vision_call(session, city_id=bonn, cap=2) for _ in range(3)] == [
            True, True, False]
        assert reserve_vision_call(session, city_id=koeln, cap=2)
        assert vision_calls_made(session, koeln) == 1


def test_a_zero_cap_grants_nothing(warehouse: Warehouse) -> None:
    with warehouse.transaction() as session:
        city_id = get_or_create_city(session, "Bonn").id
        assert not reserve_vision_call(session, city_id=city_id, cap=0)


HOSTILE_REJECTED = ["", "   ", "'; --", "../", "/..\\", "- _ --", "🙂🙂", "x" * 300,
                    "A" * 101, None, 42]


@pytest.mark.parametrize("name", HOSTILE_REJECTED, ids=range(len(HOSTILE_REJECTED)))
def test_unusable_city_names_are_rejected_and_nothing_is_stored(
    warehouse: Warehouse, name: object
) -> None:
    with pytest.raises(InvalidInputError), warehouse.transaction() as session:
        request_city(session, city=name, threshold=1)  # type: ignore[arg-type]
    with warehouse.transaction() as session:
        assert session.scalar(select(func.count()).select_from(City)) == 0


HOSTILE_NORMALISED = {
    "Robert'); DROP TABLE dim_city;--": "ROBERT DROP TABLE DIM_CITY--",
    'Bonn" OR 1=1 --': "BONN OR 11 --",
    "SELECT * FROM fact_sights": "SELECT FROM FACT_SIGHTS",
    "../Bonn": "BONN",
    "São Paulo": "SÃO PAULO",
    "Zürich; DELETE FROM labels": "ZÜRICH DELETE FROM LABELS",
    "東京": "東京",
}


@pytest.mark.parametrize("raw", list(HOSTILE_NORMALISED))
def test_hostile_city_names_are_normalised_and_create_no_tables(
    warehouse: Warehouse, raw: str
) -> None:
    tables_before = set(inspect(warehouse.engine).get_table_names())
    with warehouse.transaction() as session:
        result = request_city(session, city=raw, threshold=1)
    assert result.city == HOSTILE_NORMALISED[raw]
    assert result.crawl_started
    with warehouse.transaction() as session:
        assert session.scalars(select(City.name)).all() == [HOSTILE_NORMALISED[raw]]
    assert set(inspect(warehouse.engine).get_table_names()) == tables_before


def test_only_distinct_clients_count_towards_the_threshold(warehouse: Warehouse) -> None:
    results = []
    for client in ("a", "a", "b", "b", "c"):
        with warehouse.transaction() as session:
            results.append(request_city(session, city="Bonn", threshold=3,
                                        client_hash=client * 64))
    assert [r.count for r in results] == [1, 1, 2, 2, 3]
    assert [r.crawl_started for r in results] == [False, False, False, False, True]


def test_a_client_over_its_daily_city_cap_is_refused_before_anything_is_stored(
    warehouse: Warehouse,
) -> None:
    for city in ("Bonn", "Köln"):
        with warehouse.transaction() as session:
            request_city(session, city=city, threshold=3, client_hash="a" * 64,
                         max_cities_per_client=2)
    with pytest.raises(QuotaExceededError), warehouse.transaction() as session:
        request_city(session, city="Essen", threshold=3, client_hash="a" * 64,
                     max_cities_per_client=2)
    with warehouse.transaction() as session:
        assert sorted(session.scalars(select(City.name))) == ["BONN", "KÖLN"]
        again = request_city(session, city="Bonn", threshold=3, client_hash="a" * 64,
                             max_cities_per_client=2)
    assert again.count == 1


def test_parallel_requests_of_the_same_clients_count_each_client_once(
    warehouse: Warehouse,
) -> None:
    barrier = threading.Barrier(8)

    def request(thread: int) -> list[bool]:
        barrier.wait()
        started = []
        for _ in range(5):
            with warehouse.transaction() as session:
                result = request_city(session, city="Paris", threshold=4,
                                      client_hash=str(thread % 4) * 64)
                started.append(result.crawl_started)
        return started

    with ThreadPoolExecutor(8) as pool:
        started = [flag for flags in pool.map(request, range(8)) for flag in flags]
    assert started.count(True) == 1
    with warehouse.transaction() as session:
        assert session.scalar(select(CityRequest.count)) == 4
