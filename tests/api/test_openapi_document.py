"""What the OpenAPI document promises: one error body, security only where a key is needed."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def test_every_error_response_is_the_one_detail_string_body(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and not (path == "/health" and status == "503"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
            for status in ("413", "500", "503"):
                assert status in operation["responses"], (method, path, status)


def test_only_operator_routes_are_documented_as_needing_the_key(document: dict[str, Any]) -> None:
    secured = sorted(f"{method.upper()} {path}" for path, item in document["paths"].items()
                     for method, operation in item.items() if operation.get("security"))
    assert secured == ["POST /api/cities/{city}", "POST /api/cities/{city}/existing"]


def test_a_city_filter_that_is_unusable_is_a_documented_400(
    client: TestClient, document: dict[str, Any]
) -> None:
    assert "400" in document["paths"]["/api/jobs"]["get"]["responses"]
    response = client.get("/api/jobs", params={"city": "--"})
    assert response.status_code == 400


def test_a_validation_error_has_the_documented_body(client: TestClient) -> None:
    response = client.get("/api/jobs", params={"limit": "lots"})
    assert response.status_code == 422
    assert set(response.json()) == {"detail"} and isinstance(response.json()["detail"], str)
