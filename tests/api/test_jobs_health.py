"""GET /api/jobs, GET /health, the OpenAPI docs and the error contract."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from sightscan.api import create_app
from sightscan.config import Settings
from sightscan.errors import ConfigurationError, QuotaExceededError
from sightscan.storage import BlobStore
from sightscan.warehouse import Warehouse


def test_jobs_are_empty_at_first(client: TestClient) -> None:
    assert client.get("/api/jobs").json() == {"jobs": [], "gpu_instance": None}


def test_jobs_list_newest_first_and_filter_by_city(client: TestClient,
                                                   operator: dict[str, str]) -> None:
    for city in ("Wien", "Köln"):
        client.post(f"/api/cities/{city}/add", params={"force": "true"}, headers=operator)
    jobs = client.get("/api/jobs").json()["jobs"]
    assert [(job["city"], job["stage"], job["state"]) for job in jobs] == [
        ("KÖLN", "crawl", "queued"), ("WIEN", "crawl", "queued")]
    assert set(jobs[0]) >= {"id", "reason", "counts", "attempts", "created_at", "finished_at"}
    only = client.get("/api/jobs", params={"city": "wien"}).json()["jobs"]
    assert [job["city"] for job in only] == ["WIEN"]


def test_jobs_reject_bad_parameters(client: TestClient) -> None:
    assert client.get("/api/jobs", params={"city": "\"';"}).status_code == 400
    assert client.get("/api/jobs", params={"limit": "lots"}).status_code == 422


def test_health_reports_the_database(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_health_is_503_when_the_database_is_unreachable(settings: Settings,
                                                        tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    broken = Warehouse(engine, BlobStore(str(tmp_path / "blobs")), settings)
    with TestClient(create_app(settings, warehouse=broken, scheduler=_Raising(None))) as client:
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["database"] == "unreachable"
        listing = client.get("/api/cities/")
        assert listing.status_code == 503
        assert listing.json() == {"detail": "database unavailable"}


def test_openapi_docs_describe_every_endpoint(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/cities/", "/api/cities/{city}/model", "/api/cities/{city}/model/version",
            "/api/cities/{city}/model/metadata", "/api/cities/{city}/image",
            "/api/cities/{city}/add", "/api/cities/{city}", "/api/cities/{city}/existing",
            "/api/cities/logs", "/api/jobs", "/health"} <= set(paths)
    upload = paths["/api/cities/{city}/image"]["post"]["requestBody"]["content"]
    assert "image" in upload["multipart/form-data"]["schema"]["properties"]


def test_unknown_paths_and_methods_answer_json(client: TestClient) -> None:
    assert client.get("/api/nothing").json() == {"detail": "Not Found"}
    response = client.delete("/api/cities/Wien/model")
    assert response.status_code == 405
    assert isinstance(response.json()["detail"], str)


@dataclass
class _Raising:
    error: Exception | None

    def submit(self, stage: str, city: str, **options: Any) -> int | None:
        if self.error is not None:
            raise self.error
        return None


@pytest.mark.parametrize("error, status, detail", [
    (RuntimeError("secret internals at /srv/app.py line 3"), 500, "internal error"),
    (ConfigurationError("REDIS_URL: expected a redis:// URL"), 500,
     "REDIS_URL: expected a redis:// URL"),
    (QuotaExceededError("cap of 200 Vision calls reached"), 429, "cap of 200 Vision calls reached"),
])
def test_errors_become_json_without_a_trace(
    settings: Settings, warehouse: Warehouse, operator: dict[str, str],
    error: Exception, status: int, detail: str,
) -> None:
    app = create_app(settings, warehouse=warehouse, scheduler=_Raising(error))
    with TestClient(app) as client:
        response = client.post("/api/cities/Wien/add", params={"force": "true"}, headers=operator)
    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert "Traceback" not in response.text


def test_importing_the_api_does_no_work(tmp_path: Path) -> None:
    code = "import sightscan.api, sightscan.api.app, sightscan.api.routers.cities"
    subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=tmp_path, check=True,
                   env={"PATH": os.environ.get("PATH", "")}, timeout=60)
    assert list(tmp_path.iterdir()) == []  # no data dir, database or blob folder created


def test_create_app_opens_and_migrates_the_configured_warehouse(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    app = create_app(settings, scheduler=_Raising(None))
    with TestClient(app) as client:
        assert client.get("/api/cities/Wien/model/version").json() == -1
