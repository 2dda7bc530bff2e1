"""The command line as a user runs it: exit codes, one-line errors, imports that dedupe."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from sightscan.cli import app
from sightscan.config import get_settings


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
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
    assert "6 added" in out and "1 file skipped" in out and "6 labels" in out
    code, out, _ = run("cities")
    assert code == 0 and "KÖLN" in out


def test_import_goes_on_past_a_bad_file_and_a_bad_label_line_and_sums_up(tmp_path: Path) -> None:
    dataset = _yolo_dataset(tmp_path / "yolo")
    labels = dataset / "labels" / "train" / "train1.txt"
    labels.write_text("1 0.5 0.5 0.0 0.6\n0 0.5 0.5 0.2 0.2\n")
    (dataset / "images" / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 30)
    code, out, err = run("import-dataset", str(dataset), "--city", "Rome", "--format", "yolo")
    assert code == 0
    assert "5 added" in out and "1 file skipped" in out and "1 label line skipped" in out
    assert "3 labels" in out  # the zero-width box is gone, the line after it kept
    assert f"skipped {dataset / 'images' / 'train' / 'broken.png'}: expected" in err
    assert f"skipped {dataset / 'labels' / 'train' / 'train1.txt'}:1: zero-width" in err
    assert "1 x label line: zero-width or zero-height box" in out


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



@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    """An untrained exported model of two sights (enough for the client side)."""
    pytest.importorskip("torch")
    from sightscan.training.export import base_metadata, export_onnx
    from sightscan.training.model import SightNet

    net = SightNet(2, 64, pretrained=False).eval()
    return export_onnx(net, base_metadata(["Colosseum", "Pantheon"], 64))


@pytest.fixture
def rome_model(data_dir: Path, model_bytes: bytes) -> None:
    """`model_bytes` published as ROME's current model in the CLI's warehouse."""
    from sightscan.config import load_settings
    from sightscan.warehouse import Warehouse
    from sightscan.warehouse.versions import add_model_version

    warehouse = Warehouse.from_settings(load_settings(), migrate=True)
    with warehouse.transaction() as session:
        add_model_version(session, warehouse.blobs, city="Rome", model_bytes=model_bytes,
                          metadata={}, metrics={}, labelled_images=0)
    warehouse.engine.dispose()


def test_gate_shows_a_city_models_gate_and_publishes_it_moved(data_dir: Path) -> None:
    pytest.importorskip("torch")
    from gated_model import gated_model_bytes
    from sightscan.warehouse.versions import add_model_version

    warehouse = _warehouse_of_the_cli()
    with warehouse.transaction() as session:
        add_model_version(session, warehouse.blobs, city="Rome", metadata={}, metrics={},
                          model_bytes=gated_model_bytes(["Colosseum", "Pantheon"]))
    warehouse.engine.dispose()
    code, out, err = run("gate", "Rome")
    assert code == 0, err
    assert "ROME model version 1" in out and "threshold +0.3000  Pantheon" in out
    assert "negatives' margin 0.2000" in out and "1 of 40 of the city's photos" in out
    code, out, err = run("gate", "Rome", "--negative-margin", "0.05")
    assert code == 0, err
    assert "ROME model version 2 (gate moved from version 1)" in out
    assert "negatives' margin 0.0500" in out and "rival margin 0.1000" in out
    code, out, err = run("gate", "Rome", "--threshold", "5")
    assert code == 1 and out == ""
    assert err.strip() == "error: the threshold must be between -2 and 1, got 5"
    assert "ROME model version 2" in run("gate", "Rome")[1]  # nothing published by the error


def test_detect_with_a_server_keeps_http_request_lines_off_the_terminal(
    tmp_path: Path, model_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    from fakes.server import FakeServer, Reply

    server = FakeServer().start()
    try:
        json_reply = Reply(body="1", headers={"Content-Type": "application/json"})
        server.route("GET", "/api/cities/ROME/model/version", json_reply)
        server.route("GET", "/api/cities/ROME/model", Reply(body=model_bytes))
        _photo(tmp_path / "p.jpg", 1)
        caplog.set_level(logging.INFO)
        code, out, err = run("detect", "--city", "Rome", "--server", server.url,
                             str(tmp_path / "p.jpg"))
    finally:
        server.stop()
    assert code == 0, err
    assert len(server.requests_to("/api/cities/ROME/model")) == 1
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]


def test_detect_reports_a_missing_file_and_a_folder_as_such(
    tmp_path: Path, rome_model: None
) -> None:
    _photo(tmp_path / "good.jpg", 1)
    (tmp_path / "album").mkdir()
    code, out, err = run("detect", "--city", "Rome", str(tmp_path / "good.jpg"),
                         str(tmp_path / "gone.jpg"), str(tmp_path / "album"))
    assert code == 1
    assert f"{tmp_path / 'gone.jpg'}: no such file" in err
    assert f"{tmp_path / 'album'}: is a folder" in err
    assert "empty file" not in err and "2 of 3 photos could not be read" in err
    assert f"{tmp_path / 'good.jpg'}:" in out  # the valid photo still got its result


def test_one_broken_photo_does_not_discard_the_others_in_json(
    tmp_path: Path, rome_model: None
) -> None:
    _photo(tmp_path / "a.jpg", 1)
    _photo(tmp_path / "b.jpg", 2)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)
    code, out, err = run("detect", "--city", "Rome", "--json", str(tmp_path / "a.jpg"),
                         str(tmp_path / "broken.jpg"), str(tmp_path / "b.jpg"))
    assert code == 1 and "broken.jpg" in err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["image"] for r in records] == [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]


def test_draw_keeps_one_output_per_photo_when_names_collide(
    tmp_path: Path, rome_model: None
) -> None:
    _photo(tmp_path / "x" / "photo.jpg", 1)
    _photo(tmp_path / "y" / "photo.jpg", 2)
    Image.new("RGB", (30, 30)).save(tmp_path / "y" / "photo.png")
    code, out, _ = run("detect", "--city", "Rome", "--draw", str(tmp_path / "out"),
                       str(tmp_path / "x" / "photo.jpg"), str(tmp_path / "y" / "photo.jpg"),
                       str(tmp_path / "y" / "photo.png"))
    assert code == 0
    drawn = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert drawn == ["photo-2.jpg", "photo-3.jpg", "photo.jpg"]
    assert all(f"-> {tmp_path / 'out' / name}" in out for name in drawn)
    with Image.open(tmp_path / "out" / "photo-3.jpg") as third:
        assert third.size == (30, 30)  # the png's drawing, not an overwritten jpg's


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_detect_reads_avif_and_heic_photos(tmp_path: Path, rome_model: None, fmt: str) -> None:
    from sightscan.images import register_formats

    register_formats()
    Image.new("RGB", (40, 30), (90, 90, 200)).save(tmp_path / f"p.{fmt.lower()}", format=fmt)
    code, out, err = run("detect", "--city", "Rome", str(tmp_path / f"p.{fmt.lower()}"))
    assert code == 0, err
    assert out.startswith(str(tmp_path / f"p.{fmt.lower()}"))


def test_import_takes_avif_and_heic_photos(tmp_path: Path) -> None:
    from sightscan.images import register_formats

    register_formats()
    root = tmp_path / "set" / "Trevi_Fountain"
    root.mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 40, 40)).save(root / "a.avif", format="AVIF")
    Image.new("RGB", (40, 30), (40, 200, 40)).save(root / "b.heic", format="HEIF")
    Image.new("RGB", (40, 30), (40, 40, 200)).save(root / "c.HEIF", format="HEIF")
    code, out, _ = run("import-dataset", str(tmp_path / "set"), "--city", "Rome")
    assert code == 0 and "3 added" in out and "0 files skipped" in out


def _warehouse_of_the_cli() -> Any:
    from sightscan.config import load_settings
    from sightscan.warehouse import Warehouse

    return Warehouse.from_settings(load_settings(), migrate=True)


def test_status_shows_a_starting_training_in_words_and_never_cuts_a_word() -> None:
    from sightscan.warehouse.cities import get_or_create_city
    from sightscan.warehouse.jobs import claim_job, create_job, heartbeat

    warehouse = _warehouse_of_the_cli()
    with warehouse.transaction() as session:
        city_id = get_or_create_city(session, "Rome").id
        train = create_job(session, city_id=city_id, stage="train")
        label = create_job(session, city_id=city_id, stage="label")
        assert train is not None and label is not None
        claim_job(session, train)
        claim_job(session, label)
        long_counts = {f"outcome_number_{n}_with_a_long_name": n for n in range(8)}
        heartbeat(session, label, counts=long_counts)
    warehouse.engine.dispose()
    code, out, _ = run("status")
    assert code == 0
    assert "training: starting" in out and "{}" not in out
    words = set(out.replace("│", " ").split())
    assert {"outcome", "number", "with", "long", "name", "7"} <= words  # all eight, whole words
    assert not [w for w in words if w.startswith("outcom") and w.rstrip(",") != "outcome"]


def test_city_add_tells_to_start_a_worker_only_when_none_is_alive(tmp_path: Path) -> None:
    from sightscan.warehouse.cloud import beat_worker

    photos = tmp_path / "photos" / "Colosseum"
    _photo(photos / "1.jpg", 1)
    code, out, _ = run("city", "add", "Rome", "--photos", str(tmp_path / "photos"))
    assert code == 0 and "no worker is running: start `sightscan up`" in out
    warehouse = _warehouse_of_the_cli()
    with warehouse.transaction() as session:
        beat_worker(session, worker_id="host:1:main", queue="main", host="host")
    warehouse.engine.dispose()
    code, out, _ = run("city", "add", "Paris", "--photos", str(tmp_path / "photos"))
    assert code == 0 and "1 worker running" in out and "sightscan up" not in out
