"""GET /api/cities/{city}/model, /model/version and /model/metadata."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient

from sightscan.api.routers.models import content_disposition, etag_matches


def test_model_download_returns_the_newest_bytes_with_a_strong_etag(
    client: TestClient, publish_model: Callable[..., Any]
) -> None:
    publish_model("Köln", b"model-one")
    publish_model("Köln", b"model-two")
    response = client.get("/api/cities/k%C3%B6ln/model")
    assert response.status_code == 200
    assert response.content == b"model-two"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["etag"] == f'"{hashlib.sha256(b"model-two").hexdigest()}"'
    assert "filename*=UTF-8''K%C3%96LN-v2.onnx" in response.headers["content-disposition"]


def test_model_download_answers_304_when_the_client_has_it(
    client: TestClient, publish_model: Callable[..., Any]
) -> None:
    publish_model("Berlin", b"model-one")
    etag = client.get("/api/cities/Berlin/model").headers["etag"]
    response = client.get("/api/cities/Berlin/model", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag


def test_model_download_sends_the_new_model_after_an_update(
    client: TestClient, publish_model: Callable[..., Any]
) -> None:
    publish_model("Berlin", b"model-one")
    old = client.get("/api/cities/Berlin/model").headers["etag"]
    publish_model("Berlin", b"model-two")
    response = client.get("/api/cities/Berlin/model", headers={"If-None-Match": old})
    assert response.status_code == 200
    assert response.content == b"model-two"


def test_model_download_is_404_json_for_a_city_without_a_model(client: TestClient) -> None:
    client.post("/api/cities/Paris/add")
    for city in ("Paris", "Atlantis"):
        response = client.get(f"/api/cities/{city}/model")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert "no model" in response.json()["detail"]


def test_model_download_names_a_non_latin_city_safely(
    client: TestClient, publish_model: Callable[..., Any]
) -> None:
    publish_model("東京", b"tokyo")
    response = client.get(f"/api/cities/{quote('東京')}/model")
    assert response.status_code == 200
    assert response.content == b"tokyo"
    assert 'filename="__-v1.onnx"' in response.headers["content-disposition"]


def test_model_version_is_minus_one_without_a_model_and_counts_up(
    client: TestClient, publish_model: Callable[..., Any]
) -> None:
    assert client.get("/api/cities/Wien/model/version").json() == -1
    publish_model("Wien", b"a")
    assert client.get("/api/cities/Wien/model/version").json() == 1
    publish_model("Wien", b"b")
    response = client.get("/api/cities/wien/model/version")
    assert response.status_code == 200
    assert response.json() == 2


def test_model_version_of_an_unusable_name_is_400(client: TestClient) -> None:
    response = client.get("/api/cities/%22%3B/model/version")
    assert response.status_code == 400
    assert "city name" in response.json()["detail"]


def test_model_metadata_returns_metadata_and_metrics(
    client: TestClient, publish_model: Callable[..., Any]
) -> None:
    publish_model("Wien", b"weights", map50=0.91)
    body = client.get("/api/cities/Wien/model/metadata").json()
    assert body["city"] == "WIEN"
    assert body["version"] == 1
    assert body["sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert body["size_bytes"] == len(b"weights")
    assert body["metadata"]["sights"] == ["Dom", "Bridge"]
    assert body["metrics"] == {"map50": 0.91}


def test_model_metadata_is_404_without_a_model(client: TestClient) -> None:
    response = client.get("/api/cities/Wien/model/metadata")
    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)


def test_etag_matching_follows_if_none_match_rules() -> None:
    assert etag_matches('"a", "b"', '"b"')
    assert etag_matches('W/"b"', '"b"')
    assert etag_matches("*", '"b"')
    assert not etag_matches('"a"', '"b"')
    assert not etag_matches(None, '"b"')


def test_content_disposition_has_an_ascii_fallback_and_the_utf8_name() -> None:
    header = content_disposition('KÖ"LN-v1.onnx')
    assert header.startswith('attachment; filename="K__LN-v1.onnx"; ')
    assert header.endswith("filename*=UTF-8''K%C3%96%22LN-v1.onnx")
    header.encode("latin-1")


def test_model_metadata_explains_each_metric(
    client: TestClient, publish_model: Callable[..., Any]
) -> None:
    publish_model("Wien", b"weights", map50=0.0)
    explained = client.get("/api/cities/Wien/model/metadata").json()["metrics_explained"]
    assert {"map50", "map50_95", "top1_accuracy", "negatives_clean_rate"} <= explained.keys()
    assert "without boxes" in explained["map50"]
