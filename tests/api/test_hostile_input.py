"""Hostile text and bodies: refused with 4xx and a message, nothing stored, on both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from sightscan.text import json_depth, loads_bounded
from sightscan.warehouse import Warehouse
from sightscan.warehouse.models import LabelRow, Sight

from .test_images import call_asgi

Snapshot = Callable[[], dict[str, int]]


def upload(client: TestClient, data: bytes, **fields: str) -> Any:
    return client.post("/api/cities/Berlin/image",
                       files={"image": ("a.jpg", data, "image/jpeg")}, data=fields)


def label(name: str) -> dict[str, Any]:
    return {"ulx": 0.1, "uly": 0.1, "lrx": 0.5, "lry": 0.5, "sightName": name}


@pytest.mark.parametrize(
    "fields",
    [
        {"labels": "[" * 60_000},
        {"labels": "[" * 40 + "]" * 40},
        {"labels": '[{"ulx": 0.1, "uly": 0.1, "lrx": 0.5, "lry": 0.5, "sightName": "a\\ud800b"}]'},
        {"labels": json.dumps([label("Dom\x00")])},
        {"labels": json.dumps([label("Dom\u0007")])},
        {"labels": json.dumps([label("ok") | {"x\u0000": 1}])},
        {"sight": "Reichstag\x00"},
        {"sight": "Reichstag\x1b[31m"},
    ],
    ids=["deep-brackets", "depth-40", "lone-surrogate-escape", "nul-in-label", "bell-in-label",
         "nul-in-key", "nul-in-sight", "escape-in-sight"],
)
def test_hostile_text_in_an_upload_is_400_and_stores_nothing(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot,
    fields: dict[str, str],
) -> None:
    before = snapshot()
    response = upload(client, make_image(1), **fields)
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)
    assert snapshot() == before


def test_a_lone_surrogate_sent_as_raw_bytes_in_a_form_field_is_400(
    client: TestClient, make_image: Callable[..., bytes], snapshot: Snapshot
) -> None:
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + make_image(2) + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"sight\"\r\n\r\n"
    ).encode() + b"Dom\xed\xa0\x80" + f"\r\n--{boundary}--\r\n".encode()
    before = snapshot()
    response = client.post("/api/cities/Berlin/image", content=body,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 400, response.text
    assert snapshot() == before


def test_tabs_newlines_and_other_scripts_are_ordinary_text(
    client: TestClient, make_image: Callable[..., bytes], warehouse: Warehouse
) -> None:
    labels = json.dumps([label("Kölner\tDom"), label("東京タワー")])
    response = upload(client, make_image(3), labels=labels, sight="Kölner\nDom")
    assert response.status_code == 201, response.text
    with warehouse.transaction() as session:
        assert session.scalars(select(Sight.name)).all() == ["Kölner Dom"]
        assert sorted(session.scalars(select(LabelRow.name))) == ["Kölner Dom", "東京タワー"]


@pytest.mark.parametrize(
    "body",
    [{"sights": ["Dom\x00"]}, {"sights": ["ok", "\ud800"]}, {"photo_folder": "/tmp\x00/x"}],
    ids=["nul-sight", "surrogate-sight", "nul-folder"],
)
def test_hostile_text_in_a_json_body_is_refused_and_changes_nothing(
    client: TestClient, operator: dict[str, str], snapshot: Snapshot, body: dict[str, Any]
) -> None:
    before = snapshot()
    raw = json.dumps(body)  # ensure_ascii: the surrogate travels as a \ud800 escape
    response = client.post("/api/cities/Lyon/add", params={"force": "true"}, content=raw,
                           headers=operator | {"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert isinstance(response.json()["detail"], str)
    assert snapshot() == before


def test_a_deeply_nested_json_body_is_a_client_error(
    client: TestClient, operator: dict[str, str], snapshot: Snapshot
) -> None:
    before = snapshot()
    response = client.post("/api/cities/Lyon/add", content="[" * 60_000,
                           headers=operator | {"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
    assert snapshot() == before


# ---------------------------------------------------------------- body size, every route
@pytest.mark.parametrize("settings_overrides", [{"sightscan_max_json_bytes": 1000}])
def test_a_large_json_body_is_refused_with_413_before_any_check(
    client: TestClient, snapshot: Snapshot
) -> None:
    before = snapshot()
    body = json.dumps({"sights": ["x" * 100] * 50})
    response = client.post("/api/cities/Lyon/add", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "at most 1000 bytes" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("settings_overrides", [{"sightscan_max_json_bytes": 1000}])
def test_a_streamed_json_body_without_length_is_cut_off_while_reading(
    app: FastAPI, snapshot: Snapshot
) -> None:
    before = snapshot()
    chunks = iter([b" " * 512] * 1000)
    status, pulled = asyncio.run(call_asgi(
        app, "/api/cities/Lyon/add", [(b"content-type", b"application/json")], chunks))
    assert status == 413
    assert pulled <= 2
    assert snapshot() == before


@pytest.mark.parametrize("settings_overrides", [{"sightscan_max_json_bytes": 1000}])
def test_a_declared_oversized_body_is_413_even_where_the_route_reads_none(
    client: TestClient,
) -> None:
    response = client.request("GET", "/api/cities/", content=b"x" * 2000)
    assert response.status_code == 413
    assert response.json()["detail"] == "expected a request body of at most 1000 bytes"


# ---------------------------------------------------------------- the JSON helpers
def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth('[{"a": "[[[[", "b": [1, "\\"]]]"]}]') == 3
    assert json_depth("[" * 60_000) == 60_000


@pytest.mark.parametrize("raw", ["[" * 33 + "]" * 33, '"\\u0000"', "NaN", "[Infinity]", "nope"])
def test_loads_bounded_refuses_what_the_database_or_the_stack_cannot_take(raw: str) -> None:
    from sightscan.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        loads_bounded(raw, "`labels`")
