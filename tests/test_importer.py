"""The importer goes on past unusable YOLO label lines and sums them up in its report."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from sightscan.config import get_settings
from sightscan.importer import import_dataset
from sightscan.warehouse import Warehouse


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    monkeypatch.setenv("SIGHTSCAN_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    return Warehouse.from_settings(get_settings(), migrate=True)


def test_polygons_become_boxes_and_bad_lines_are_reported(
    tmp_path: Path, warehouse: Warehouse
) -> None:
    root = tmp_path / "set"
    (root / "train" / "labels").mkdir(parents=True)
    (root / "train" / "images").mkdir(parents=True)
    (root / "data.yaml").write_text("names: [Casa_Manila, Fort_Santiago]\n")
    for i, text in enumerate([
        "0 0.1 0.2 0.5 0.2 0.4 0.7\n",  # polygon
        "1 0.5 0.5 0.4 0.4\n3 0.5 0.5 0.4 0.4\n",  # box + an unknown class
        "0 0.5 0.5 0.0 0.3\n",  # zero width: the photo stays unlabelled
    ]):
        Image.new("RGB", (32, 24), (40 * i, 90, 200)).save(root / "train" / "images" / f"{i}.png")
        (root / "train" / "labels" / f"{i}.txt").write_text(text)
    report = import_dataset(warehouse, root, city="Manila", fmt="yolo")
    assert (report.added, report.labels) == (3, 2)
    assert [(Path(p.file).name, p.line) for p in report.label_problems] == [("1.txt", 2),
                                                                          ("2.txt", 1)]
