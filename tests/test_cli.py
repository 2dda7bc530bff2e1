"""The command line as a user runs it: exit codes, one-line errors, imports that dedupe."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from sightscan.cli import app
from sightscan.config import get_settings


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("PGHOST", "PGDATABASE", "PGUSER", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIGHTSCAN_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()


def _photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 40), (seed * 40 % 256, 90, 200 - seed)).save(path)


def _folder_dataset(root: Path) -> Path:
    for s, sight in enumerate(["Old_Bridge", "Town Hall"]):
        for i in range(3):
            _photo(root / sight / f"{i}.jpg", s * 10 + i)
    (root / "Town Hall" / "notes.jpg").write_text("not a photo")
    return root


def _yolo_dataset(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "data.yaml").write_text("names:\n  - Old_Bridge\n  - Town_Hall\nnc: 2\n")
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            _photo(root / "images" / split / f"{split}{i}.png", i + (10 if split == "val" else 0))
            label = root / "labels" / split / f"{split}{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"{i % 2} 0.5 0.5 0.4 0.6\n" if i else "")  # one empty label file
    return root


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_import_of_a_folder_per_sight_set_labels_each_photo_with_its_folder(tmp_path: Path) -> None:
    code, out, _ = run("import-dataset", str(_folder_dataset(tmp_path / "set")), "--city", "Köln")
    assert code == 0
    assert "6 added" in out and "1 skipped" in out and "6 labels" in out
    code, out, _ = run("cities")
    assert code == 0 and "KÖLN" in out


def test_reimporting_the_same_data_adds_nothing(tmp_path: Path) -> None:
    dataset = _folder_dataset(tmp_path / "set")
    run("import-dataset", str(dataset), "--city", "Koeln")
    code, out, _ = run("import-dataset", str(dataset), "--city", "Koeln")
    assert code == 0 and "0 added" in out and "6 already stored" in out


def test_import_of_a_yolo_set_keeps_boxes_and_reads_split_folders(tmp_path: Path) -> None:
    code, out, _ = run("import-dataset", str(_yolo_dataset(tmp_path / "yolo")), "--city", "Rome",
                       "--format", "yolo")
    assert code == 0
    assert "5 added" in out and "3 labels" in out  # two photos have empty label files


def test_an_unknown_format_fails_with_one_line_and_exit_code_1(tmp_path: Path) -> None:
    code, _, err = run("import-dataset", str(tmp_path), "--city", "Rome", "--format", "coco")
    assert code == 1
    assert err.strip().count("\n") == 0 and "folders or yolo" in err


def test_a_city_name_without_letters_is_rejected(tmp_path: Path) -> None:
    code, _, err = run("import-dataset", str(_folder_dataset(tmp_path / "s")), "--city", "'; --")
    assert code == 1 and "city name" in err


def test_detect_without_a_model_says_how_to_get_one(tmp_path: Path) -> None:
    _photo(tmp_path / "p.jpg", 1)
    code, _, err = run("detect", "--city", "Rome", str(tmp_path / "p.jpg"))
    assert code == 1 and "sightscan train" in err


def test_train_without_labelled_photos_refuses_and_publishes_nothing(tmp_path: Path) -> None:
    run("import-dataset", str(_folder_dataset(tmp_path / "set")), "--city", "Rome")
    code, _, err = run("train", "Rome")  # 3 photos per sight < MIN_IMAGE_NUMBER_PER_LABEL (10)
    assert code == 1 and err.strip()
    code, out, _ = run("cities")
    assert "ROME" in out and out.rstrip().splitlines()[-2].rstrip(" │").endswith("-")


def test_an_invalid_setting_stops_with_the_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTS_EPOCHS", "zero")
    get_settings.cache_clear()
    code, _, err = run("cities")
    assert code == 1 and "MTS_EPOCHS" in err


def test_db_upgrade_creates_the_embedded_database(data_dir: Path) -> None:
    code, out, _ = run("db", "upgrade")
    assert code == 0 and (data_dir / "sightscan.db").is_file()


def test_detect_rejects_a_file_that_is_not_a_photo(tmp_path: Path, data_dir: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    code, _, err = run("detect", "--city", "Rome", str(text))
    assert code == 1 and "notes.jpg" in err and "image" in err

