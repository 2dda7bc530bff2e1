"""GET /api/cities/ and POST /api/cities/{city}/add, hostile city names included."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from sightscan.api import create_app
from sightscan.config import Settings
from sightscan.warehouse import Warehouse
from sightscan.warehouse.models import City, CityRequest, CityRequestClient


@pytest.fixture
def settings_overrides(tmp_path: Any) -> dict[str, Any]:
    """Operators may name photo folders under the test's temporary folder."""
    return {"sightscan_photo_root": tmp_path}


def city_url(name: str, suffix: str = "") -> str:
    return f"/api/cities/{quote(name, safe='')}{suffix}"


def test_cities_lists_only_cities_with_a_model_alphabetically(
    client: TestClient, publish_model: Callable[..., Any]
) -> None:
    publish_model("Wien")
    publish_model("Berlin")
    client.post("/api/cities/Paris/add")  # requested, no model: not supported
    assert client.get("/api/cities/").json() == {"cities": ["BERLIN", "WIEN"]}


def test_cities_is_empty_on_a_new_warehouse(client: TestClient) -> None:
    response = client.get("/api/cities/")
    assert response.status_code == 200
    assert response.json() == {"cities": []}


def client_at(app: FastAPI, address: str) -> TestClient:
    """A client of the app that connects from `address` (the rate limiter's client key)."""
    return TestClient(app, client=(address, 50000))


def test_add_starts_the_crawl_once_when_enough_distinct_clients_asked(
    app: FastAPI, scheduler: Any
) -> None:
    answers = [client_at(app, f"10.0.0.{n}").post("/api/cities/Köln/add").json()
               for n in range(1, 5)]
    assert [a["requests"] for a in answers] == [1, 2, 3, 4]
    assert [a["crawl_started"] for a in answers] == [False, False, True, False]
    assert answers[2]["job_id"] is not None
    assert answers[0]["city"] == "KÖLN"
    assert scheduler.submitted == [("crawl", "KÖLN", {})]


def test_one_client_asking_again_and_again_counts_once_and_starts_nothing(
    client: TestClient, scheduler: Any
) -> None:
    answers = [client.post("/api/cities/Köln/add").json() for _ in range(5)]
    assert [a["requests"] for a in answers] == [1, 1, 1, 1, 1]
    assert not any(a["crawl_started"] for a in answers)
    assert scheduler.submitted == []


def test_client_addresses_are_stored_only_as_keyed_hashes(app: FastAPI,
                                                         warehouse: Warehouse) -> None:
    client_at(app, "203.0.113.7").post("/api/cities/Köln/add")
    with warehouse.transaction() as session:
        hashes = session.scalars(select(CityRequestClient.client_hash)).all()
    assert len(hashes) == 1 and len(hashes[0]) == 64
    assert "203.0.113.7" not in hashes[0]
    assert hashes[0] != hashlib.sha256(b"203.0.113.7").hexdigest()


def test_one_client_cannot_create_more_cities_than_its_daily_cap(
    make_settings: Callable[..., Settings], warehouse: Warehouse, scheduler: Any,
    snapshot: Callable[[], dict[str, int]],
) -> None:
    settings = make_settings(sightscan_city_requests_per_client_per_day=3)
    with TestClient(create_app(settings, warehouse=warehouse, scheduler=scheduler)) as client:
        codes = [client.post(f"/api/cities/{name}/add").status_code
                 for name in ("Paris", "Rome", "Oslo")]
        before = snapshot()
        refused = client.post("/api/cities/Lyon/add")
        again = client.post("/api/cities/Paris/add")  # a city it asked for before is fine
    assert codes == [200, 200, 200]
    assert refused.status_code == 429
    assert "at most 3 cities a day" in refused.json()["detail"]
    assert again.status_code == 200
    assert snapshot() == before


def test_spellings_of_one_city_are_one_city(app: FastAPI, warehouse: Warehouse) -> None:
    names = ["München", "Munich", "MUNICH", "muenchen"]
    answers = [client_at(app, f"10.0.1.{n}").post(city_url(name, "/add")).json()
               for n, name in enumerate(names)]
    assert {a["city"] for a in answers} == {"MUNICH"}
    assert [a["requests"] for a in answers] == [1, 2, 3, 4]
    with warehouse.transaction() as session:
        assert session.scalars(select(City.name)).all() == ["MUNICH"]


@pytest.mark.parametrize("lookalike", ["ＢＥＲＬＩＮ", "BERLІN", "ΒΕRLIN"])
def test_lookalike_spellings_meet_the_latin_city(client: TestClient, lookalike: str) -> None:
    response = client.post(city_url(lookalike, "/add"))
    assert response.status_code == 200, response.text
    assert response.json()["city"] == "BERLIN"


@pytest.mark.parametrize("path", ["/add", "/image"])
def test_an_unknown_city_is_refused_with_the_closest_known_names(
    client: TestClient, snapshot: Callable[[], dict[str, int]], make_image: Callable[..., bytes],
    path: str,
) -> None:
    before = snapshot()
    files = {"image": ("a.jpg", make_image(1), "image/jpeg")} if path == "/image" else None
    response = client.post(city_url("Atlantsi", path), files=files)
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "unknown city 'Atlantsi'"
    assert "Atlanta" in body["suggestions"]
    assert snapshot() == before


def test_an_operator_may_force_a_name_the_gazetteer_does_not_know(
    client: TestClient, operator: dict[str, str], scheduler: Any
) -> None:
    response = client.post("/api/cities/Testville/add", params={"force": "true"},
                           headers=operator)
    assert response.status_code == 200
    assert response.json()["city"] == "TESTVILLE"
    assert scheduler.submitted == [("crawl", "TESTVILLE", {})]


def test_photos_may_be_sent_for_a_city_an_operator_created(
    client: TestClient, operator: dict[str, str], make_image: Callable[..., bytes]
) -> None:
    client.post("/api/cities/Testville/add", params={"force": "true"}, headers=operator)
    response = client.post("/api/cities/Testville/image",
                           files={"image": ("a.jpg", make_image(1), "image/jpeg")})
    assert response.status_code == 201
    assert response.json()["city"] == "TESTVILLE"


def test_the_crawl_job_shows_in_the_job_list(app: FastAPI, client: TestClient) -> None:
    for n in range(3):
        client_at(app, f"10.0.2.{n}").post("/api/cities/Rome/add")
    jobs = client.get("/api/jobs", params={"city": "rome"}).json()["jobs"]
    assert [(job["city"], job["stage"], job["state"]) for job in jobs] == [
        ("ROME", "crawl", "queued")]


def test_force_with_the_api_key_starts_the_crawl_below_the_threshold(
    client: TestClient, operator: dict[str, str], scheduler: Any
) -> None:
    response = client.post("/api/cities/Oslo/add", params={"force": "true"}, headers=operator)
    assert response.status_code == 200
    assert response.json()["crawl_started"] is True
    assert scheduler.submitted == [("crawl", "OSLO", {})]


@pytest.mark.parametrize("headers, status", [({}, 401), ({"X-API-Key": "wrong"}, 403)])
def test_force_without_the_right_key_is_refused_and_changes_nothing(
    client: TestClient, scheduler: Any, snapshot: Callable[[], dict[str, int]],
    headers: dict[str, str], status: int,
) -> None:
    before = snapshot()
    response = client.post("/api/cities/Oslo/add", params={"force": "true"}, headers=headers)
    assert response.status_code == status
    assert "key" in response.json()["detail"].lower()
    assert snapshot() == before
    assert scheduler.submitted == []


def test_a_crawl_source_in_the_body_needs_the_api_key(client: TestClient, scheduler: Any,
                                                       snapshot: Any) -> None:
    before = snapshot()
    response = client.post("/api/cities/Lyon/add", json={"sights": ["x"], "photo_folder": "/etc"})
    assert response.status_code == 401
    assert snapshot() == before
    assert scheduler.submitted == []


def test_an_operator_can_give_a_photo_folder_as_the_crawl_source(
        client: TestClient, scheduler: Any, warehouse: Warehouse, operator: dict[str, str],
        tmp_path: Any) -> None:
    (tmp_path / "Old Bridge").mkdir()
    body = {"photo_folder": str(tmp_path), "sights": ["Old Bridge"]}
    response = client.post("/api/cities/Lyon/add", params={"force": "true"}, json=body,
                           headers=operator)
    assert response.status_code == 200
    assert response.json()["crawl_started"] is True
    with warehouse.transaction() as session:
        request_row = session.scalars(select(CityRequest)).one()
        assert request_row.photo_folder == str(tmp_path.resolve())
        assert request_row.sights == ["Old Bridge"]


@pytest.mark.parametrize("folder", ["relative/path", "/no/such/folder"])
def test_a_photo_folder_that_is_not_an_absolute_existing_folder_is_rejected(
        client: TestClient, scheduler: Any, operator: dict[str, str], snapshot: Any,
        folder: str) -> None:
    before = snapshot()
    response = client.post("/api/cities/Lyon/add", params={"force": "true"},
                           json={"photo_folder": folder}, headers=operator)
    assert response.status_code == 400
    assert "photo_folder" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize(
    "raw, stored",
    [
        ("'; DROP TABLE dim_city; --", "DROP TABLE DIM_CITY --"),
        ('Quo"te\'s;', "QUOTES"),
        ("Köln", "KÖLN"),
        ("東京", "東京"),
        ("  new   york  ", "NEW YORK"),
        ("SELECT * FROM dim_city", "SELECT FROM DIM_CITY"),
    ],
)
def test_hostile_but_usable_city_names_are_normalised_and_stored_as_data(
    client: TestClient, warehouse: Warehouse, operator: dict[str, str], raw: str, stored: str
) -> None:
    client.post("/api/cities/Berlin/add")
    response = client.post(city_url(raw, "/add"), params={"force": "true"}, headers=operator)
    assert response.status_code == 200, response.text
    assert response.json()["city"] == stored
    with warehouse.transaction() as session:
        assert sorted(session.scalars(select(City.name))) == sorted(["BERLIN", stored])


@pytest.mark.parametrize(
    "raw",
    ["", " ", "'; --", "%%%", "x" * 300, "y" * 150, "../", "..", "\x00"],
    ids=["empty", "space", "only-punctuation", "percent", "300-chars", "150-chars", "dotdot-slash",
         "dotdot", "nul"],
)
def test_unusable_city_names_are_rejected_and_change_nothing(
    client: TestClient, snapshot: Callable[[], dict[str, int]], raw: str
) -> None:
    before = snapshot()
    response = client.post(city_url(raw, "/add"))
    assert response.status_code in (400, 404), response.text
    assert isinstance(response.json()["detail"], str)
    if response.status_code == 400:
        assert "city name" in response.json()["detail"]
    assert snapshot() == before


def test_a_path_traversal_city_never_escapes_the_route(
    client: TestClient, snapshot: Callable[[], dict[str, int]]
) -> None:
    before = snapshot()
    for path in ("/api/cities/..%2Fetc/add", "/api/cities/..%2F..%2Fetc%2Fpasswd/model",
                 "/api/cities/%2E%2E/add"):
        response = client.post(path) if path.endswith("add") else client.get(path)
        assert response.status_code in (400, 404), (path, response.text)
        assert "root:" not in response.text
    assert snapshot() == before


def test_a_traversal_name_in_one_segment_is_normalised_to_letters(
    client: TestClient, operator: dict[str, str]
) -> None:
    response = client.post(city_url("..\\etc", "/add"), params={"force": "true"},
                           headers=operator)
    assert response.status_code == 200
    assert response.json()["city"] == "ETC"
