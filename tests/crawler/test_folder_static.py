"""Local folder source and static sight lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakes.images import jpeg_bytes
from sightscan.crawler.errors import PhotoTooLargeError
from sightscan.crawler.folder import FolderSource
from sightscan.crawler.static import StaticDiscovery
from sightscan.crawler.types import Sight
from sightscan.errors import InvalidInputError


def make_tree(root: Path, sights: dict[str, int]) -> Path:
    for sight, count in sights.items():
        (root / sight).mkdir(parents=True)
        for n in range(count):
            (root / sight / f"{n}.jpg").write_bytes(jpeg_bytes(color=(n, 1, 2)))
    return root


def test_sub_folders_are_the_sights(tmp_path: Path) -> None:
    source = FolderSource(make_tree(tmp_path, {"Brandenburg_Gate": 2, "Reichstag": 1}))
    assert [s.name for s in source.find_sights("Berlin", 10)] == ["Brandenburg Gate",
                                                                  "Reichstag"]
    assert source.find_sights("Berlin", 1)[0].source == "folder"


def test_photos_of_a_sight_are_offered_up_to_the_limit(tmp_path: Path) -> None:
    source = FolderSource(make_tree(tmp_path, {"Brandenburg_Gate": 3, "Reichstag": 1}))
    photos = list(source.photos_for(Sight("Brandenburg Gate"), "Berlin", 2))
    assert len(photos) == 2
    assert photos[0].url.startswith("file://")
    assert photos[0].fetch(1_000_000) == jpeg_bytes(color=(0, 1, 2))


def test_a_city_sub_folder_is_used_when_present(tmp_path: Path) -> None:
    make_tree(tmp_path / "Berlin", {"Reichstag": 1})
    make_tree(tmp_path / "Paris", {"Eiffel Tower": 1})
    source = FolderSource(tmp_path)
    assert [s.name for s in source.find_sights("PARIS", 5)] == ["Eiffel Tower"]


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    source = FolderSource(make_tree(tmp_path, {"Reichstag": 1}))
    photo = next(source.photos_for(Sight("Reichstag"), "Berlin", 1))
    with pytest.raises(PhotoTooLargeError):
        photo.fetch(10)


def test_a_missing_folder_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        FolderSource(tmp_path / "nope")


def test_a_static_list_is_returned_in_order_without_duplicates() -> None:
    discovery = StaticDiscovery(["Reichstag", "  Brandenburg   Gate ", "reichstag"])
    assert [s.name for s in discovery.find_sights("Anywhere", 5)] == ["Reichstag",
                                                                      "Brandenburg Gate"]


def test_a_mapping_lists_sights_per_normalised_city() -> None:
    discovery = StaticDiscovery({"Berlin": ["Reichstag"], "Paris": ["Louvre"]})
    assert [s.name for s in discovery.find_sights("berlin", 5)] == ["Reichstag"]
    assert discovery.find_sights("Rome", 5) == []


def test_sights_are_read_from_text_and_json_files(tmp_path: Path) -> None:
    text = tmp_path / "sights.txt"
    text.write_text("# Berlin\nReichstag\n\nTV Tower  # Alex\n", encoding="utf-8")
    assert [s.name for s in StaticDiscovery.from_file(text).find_sights("x", 5)] == [
        "Reichstag", "TV Tower"]
    data = tmp_path / "sights.json"
    data.write_text(json.dumps([{"name": "Louvre", "lat": 48.86, "lon": 2.34}]), "utf-8")
    assert StaticDiscovery.from_file(data).find_sights("Paris", 5)[0].lat == 48.86


def test_a_broken_json_file_is_invalid_input(tmp_path: Path) -> None:
    data = tmp_path / "sights.json"
    data.write_text("[", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="expected JSON"):
        StaticDiscovery.from_file(data)


def test_phone_photos_in_avif_and_heic_are_offered(tmp_path: Path) -> None:
    from PIL import Image

    from sightscan.images import inspect_image, register_formats

    register_formats()
    (tmp_path / "Reichstag").mkdir()
    Image.new("RGB", (20, 16), (1, 2, 3)).save(tmp_path / "Reichstag" / "a.avif", format="AVIF")
    Image.new("RGB", (20, 16), (1, 2, 3)).save(tmp_path / "Reichstag" / "b.HEIC", format="HEIF")
    photos = list(FolderSource(tmp_path).photos_for(Sight("Reichstag"), "Berlin", 5))
    assert [Path(p.url).name for p in photos] == ["a.avif", "b.HEIC"]
    assert [inspect_image(p.fetch(1_000_000)).format for p in photos] == ["AVIF", "HEIF"]
