"""GET /api/gazetteer (city search) and GET /api/cities/{city}/status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sightscan.warehouse import Warehouse
from sightscan.warehouse.cloud import record_gpu_event
from sightscan.warehouse.jobs import claim_job, fail_job, list_jobs


def test_gazetteer_search_answers_the_contract(client: TestClient) -> None:
    response = client.get("/api/gazetteer", params={"q": "münch", "limit": 3})
    assert response.status_code == 200
    cities = response.json()["cities"]
    assert 1 <= len(cities) <= 3
    munich = next(c for c in cities if c["key"] == "MUNICH")
    assert munich["name"] == "Munich" and munich["country"] == "DE"
    assert isinstance(munich["population"], int)


@pytest.mark.parametrize("params", [{"q": ""}, {"q": "x", "limit": 0}, {"q": "x", "limit": 51},
                                    {}])
def test_gazetteer_search_refuses_bad_parameters(client: TestClient,
                                                 params: dict[str, Any]) -> None:
    assert client.get("/api/gazetteer", params=params).status_code == 422


def test_status_is_404_for_a_city_nobody_asked_for(client: TestClient) -> None:
    response = client.get("/api/cities/Munich/status")
    assert response.status_code == 404


def test_status_counts_requests_until_the_crawl_starts(app: FastAPI) -> None:
    first = TestClient(app, client=("10.1.0.1", 1))
    first.post("/api/cities/München/add")
    body = first.get("/api/cities/Munich/status").json()
    assert body == {"city": "MUNICH", "name": "Munich", "requests": 1, "requests_needed": 3,
                    "stage": "requested", "state": None, "error": None, "model_version": -1}
    for n in (2, 3):
        TestClient(app, client=(f"10.1.0.{n}", 1)).post("/api/cities/MUNICH/add")
    body = first.get("/api/cities/m%C3%BCnchen/status").json()
    assert (body["requests"], body["stage"], body["state"]) == (3, "crawl", "queued")


def test_status_shows_why_a_stage_failed(client: TestClient, operator: dict[str, str],
                                         warehouse: Warehouse) -> None:
    job_id = client.post("/api/cities/Oslo/add", params={"force": "true"},
                         headers=operator).json()["job_id"]
    with warehouse.transaction() as session:
        claim_job(session, job_id)
        fail_job(session, job_id, reason="no sights found for OSLO")
    body = client.get("/api/cities/Oslo/status").json()
    assert (body["stage"], body["state"], body["error"]) == (
        "failed", "failed", "no sights found for OSLO")
    with warehouse.transaction() as session:
        assert list_jobs(session)[0].reason == "no sights found for OSLO"


def test_status_is_ready_with_the_model_version(client: TestClient,
                                                publish_model: Callable[..., Any]) -> None:
    publish_model("Berlin")
    body = client.get("/api/cities/Berlin/status").json()
    assert (body["stage"], body["model_version"], body["name"]) == ("ready", 1, "Berlin")


def test_the_job_list_shows_the_gpu_instances_starts_and_stops(
    client: TestClient, warehouse: Warehouse
) -> None:
    with warehouse.transaction() as session:
        record_gpu_event(session, instance_id="i-1", action="start", state="pending",
                         reason="1 training job(s) wait and no training worker is alive")
        record_gpu_event(session, instance_id="i-1", action="stop", state="running",
                         reason="no training worker heartbeat for 20 minutes")
    body = client.get("/api/jobs").json()
    assert body["jobs"] == []
    events = body["gpu_instance"]["events"]
    assert [(e["action"], e["reason"]) for e in events] == [
        ("stop", "no training worker heartbeat for 20 minutes"),
        ("start", "1 training job(s) wait and no training worker is alive")]
