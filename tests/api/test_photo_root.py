"""Operator photo folders (`photo_folder` of POST /add) only under SIGHTSCAN_PHOTO_ROOT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

Snapshot = Callable[[], dict[str, int]]


def add_with_folder(client: TestClient, operator: dict[str, str], folder: str) -> Any:
    return client.post("/api/cities/Lyon/add", params={"force": "true"},
                       json={"photo_folder": folder}, headers=operator)


def test_without_a_photo_root_every_folder_is_refused_naming_the_setting(
    client: TestClient, operator: dict[str, str], snapshot: Snapshot, tmp_path: Path
) -> None:
    before = snapshot()
    response = add_with_folder(client, operator, str(tmp_path))
    assert response.status_code == 400
    assert "SIGHTSCAN_PHOTO_ROOT" in response.json()["detail"]
    assert snapshot() == before


@pytest.fixture
def photo_root(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "lyon" / "Old Bridge").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret")
    return root


@pytest.fixture
def settings_overrides(photo_root: Path) -> dict[str, Any]:
    return {"sightscan_photo_root": photo_root}


@pytest.mark.parametrize("folder", ["/", "/proc/self", "{root}/..", "{root}/lyon/../../secret",
                                    "{root}/escape", "escape", "../secret"])
def test_folders_outside_the_root_are_refused_after_resolving_links_and_dots(
    client: TestClient, operator: dict[str, str], snapshot: Snapshot, photo_root: Path,
    folder: str,
) -> None:
    before = snapshot()
    response = add_with_folder(client, operator, folder.format(root=photo_root))
    assert response.status_code == 400
    assert "SIGHTSCAN_PHOTO_ROOT" in response.json()["detail"]
    assert snapshot() == before


@pytest.mark.parametrize("folder", ["{root}/lyon", "lyon", "{root}/lyon/../lyon"])
def test_a_folder_inside_the_root_is_accepted_absolute_or_relative(
    client: TestClient, operator: dict[str, str], photo_root: Path, folder: str
) -> None:
    response = add_with_folder(client, operator, folder.format(root=photo_root))
    assert response.status_code == 200, response.text
    assert response.json()["crawl_started"] is True
