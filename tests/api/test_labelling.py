"""ILS routes: POST /api/cities/{city}, POST /api/cities/{city}/existing, GET /api/cities/logs."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city
from sightscan.warehouse.images import NewImage, add_image
from sightscan.warehouse.jobs import log_labelling

Snapshot = Callable[[], dict[str, int]]


def store_photo(warehouse: Warehouse, city: str, seed: int = 1) -> int:
    image = Image.new("RGB", (16, 12), (seed % 256, 90, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    with warehouse.transaction() as session:
        return add_image(session, warehouse.blobs,
                         NewImage(data=buffer.getvalue(), city=city, origin="crawler")).image_id


@pytest.mark.parametrize("suffix, mode", [("", "new"), ("/existing", "existing")])
def test_labelling_is_queued_with_202_and_a_job_id(
    client: TestClient, warehouse: Warehouse, scheduler: Any,
    operator: dict[str, str], suffix: str, mode: str,
) -> None:
    store_photo(warehouse, "Köln")
    response = client.post(f"/api/cities/k%C3%B6ln{suffix}", headers=operator)
    assert response.status_code == 202
    body = response.json()
    assert body["city"] == "KÖLN" and body["mode"] == mode
    assert isinstance(body["job_id"], int)
    assert scheduler.submitted == [("label", "KÖLN", {"mode": mode})]
    jobs = client.get("/api/jobs").json()["jobs"]
    assert [(job["id"], job["stage"]) for job in jobs] == [(body["job_id"], "label")]


def test_labelling_twice_while_queued_answers_a_null_job_id(
    client: TestClient, warehouse: Warehouse, operator: dict[str, str]
) -> None:
    store_photo(warehouse, "Wien")
    assert client.post("/api/cities/Wien", headers=operator).json()["job_id"] is not None
    second = client.post("/api/cities/Wien", headers=operator)
    assert second.status_code == 202
    assert second.json()["job_id"] is None


@pytest.mark.parametrize("suffix", ["", "/existing"])
def test_labelling_a_city_without_images_is_404(
    client: TestClient, operator: dict[str, str], scheduler: Any,
    snapshot: Snapshot, suffix: str,
) -> None:
    client.post("/api/cities/Paris/add")  # known city, no images
    before = snapshot()
    for city in ("Paris", "Atlantis"):
        response = client.post(f"/api/cities/{city}{suffix}", headers=operator)
        assert response.status_code == 404
        assert "Traceback" not in response.text
    assert snapshot() == before
    assert scheduler.submitted == []


@pytest.mark.parametrize("suffix", ["", "/existing"])
@pytest.mark.parametrize("headers, status, words", [
    ({}, 401, "X-API-Key"),
    ({"X-API-Key": "wrong"}, 403, "invalid API key"),
    ({"X-API-Key": ""}, 401, "missing"),
])
def test_labelling_needs_the_right_api_key(
    client: TestClient, warehouse: Warehouse, scheduler: Any, snapshot: Snapshot,
    suffix: str, headers: dict[str, str], status: int, words: str,
) -> None:
    store_photo(warehouse, "Wien")
    before = snapshot()
    response = client.post(f"/api/cities/Wien{suffix}", headers=headers)
    assert response.status_code == status
    assert words in response.json()["detail"]
    assert snapshot() == before
    assert scheduler.submitted == []


@pytest.mark.parametrize("settings_overrides", [{"sightscan_api_key": None}])
def test_key_endpoints_are_closed_when_no_key_is_configured(
    client: TestClient, warehouse: Warehouse, scheduler: Any
) -> None:
    store_photo(warehouse, "Wien")
    for headers in ({}, {"X-API-Key": "anything"}):
        response = client.post("/api/cities/Wien", headers=headers)
        assert response.status_code == 403
        assert "SIGHTSCAN_API_KEY is not configured" in response.json()["detail"]
    forced = client.post("/api/cities/Wien/add", params={"force": "true"},
                         headers={"X-API-Key": "anything"})
    assert forced.status_code == 403
    assert scheduler.submitted == []


def test_labelling_an_unusable_city_name_is_400(client: TestClient,
                                                operator: dict[str, str]) -> None:
    response = client.post("/api/cities/%27%3B%20--", headers=operator)
    assert response.status_code == 400


def test_logs_list_newest_first_and_filter_by_city(client: TestClient,
                                                    warehouse: Warehouse) -> None:
    wien_image = store_photo(warehouse, "Wien", 1)
    store_photo(warehouse, "Köln", 2)
    with warehouse.transaction() as session:
        wien, koeln = find_city(session, "Wien").id, find_city(session, "Köln").id
        log_labelling(session, city_id=wien, image_id=wien_image, labeller="weak",
                      outcome="labelled")
        log_labelling(session, city_id=koeln, image_id=None, labeller="vision", outcome="capped",
                      detail="cap of 200 reached")
    everything = client.get("/api/cities/logs").json()["log"]
    assert [(line["city"], line["outcome"]) for line in everything] == [
        ("KÖLN", "capped"), ("WIEN", "labelled")]
    only_wien = client.get("/api/cities/logs", params={"city": "wien"}).json()["log"]
    assert [line["image_id"] for line in only_wien] == [wien_image]
    assert client.get("/api/cities/logs", params={"city": "Atlantis"}).json() == {"log": []}


def test_logs_is_not_taken_for_a_city(client: TestClient,
                                      publish_model: Callable[..., object]) -> None:
    publish_model("Logs")
    assert client.get("/api/cities/logs").json() == {"log": []}
    assert client.get("/api/cities/logs/model/version").json() == 1


def test_logs_reject_bad_parameters(client: TestClient) -> None:
    assert client.get("/api/cities/logs", params={"city": "';"}).status_code == 400
    bad_limit = client.get("/api/cities/logs", params={"limit": 0})
    assert bad_limit.status_code == 422
    assert isinstance(bad_limit.json()["detail"], str)
