"""Photo credits per sight for the model metadata, from what the crawl stored per photo."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from postgres_db import temporary_database
from sightscan.config import load_settings
from sightscan.detections import Label
from sightscan.training.credits import photo_credits, photos_per_class
from sightscan.training.dataset import Sample, TrainingImage, TrainingSet
from sightscan.warehouse import Warehouse
from sightscan.warehouse.images import NewImage, add_image
from sightscan.warehouse.sights import SightInfo, keep_sight_info


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def store(warehouse: Warehouse, seed: int, author: str | None, licence: str | None,
          sight: str = "Old Tower") -> int:
    with warehouse.transaction() as session:
        return add_image(session, warehouse.blobs, NewImage(
            data=png(seed), city="TOWERS", sight=sight, author=author, licence=licence,
            page_url=f"https://commons.wikimedia.org/wiki/File:{seed}.jpg", origin="crawler",
            labels=[Label(sight)], label_source="weak")).image_id


def sample(key: str, classes: list[int]) -> Sample:
    pixels = np.zeros((4, 4, 3), np.uint8)
    return Sample(key, pixels, [], classes, TrainingImage(key, lambda: b""))


def test_each_sight_gets_the_distinct_authors_and_licences_of_its_photos(tmp_path: Path) -> None:
    warehouse = Warehouse.from_settings(load_settings(sightscan_data_dir=tmp_path), migrate=True)
    first = store(warehouse, 1, "Ada", "CC BY-SA 4.0")
    same_author = store(warehouse, 2, "Ada", "CC BY-SA 4.0")
    other = store(warehouse, 3, "Bob", "CC0")
    uncredited = store(warehouse, 4, None, None)
    training_set = TrainingSet(
        class_names=["Old Tower", "New Bridge", "Empty"],
        train=[sample(str(first), [0]), sample(str(same_author), [0]), sample("crop-1", [])],
        val=[sample(str(other), [0, 1]), sample(str(uncredited), [1])],
        dropped_classes={}, corrupt_images=[], name_mapping={}, decode_size=4)
    ids = photos_per_class(training_set)
    assert ids == {"Old Tower": [first, same_author, other], "New Bridge": [other, uncredited],
                   "Empty": []}
    with warehouse.transaction() as session:
        sights = photo_credits(session, ids)
    assert sights["Old Tower"] == {"photos": 3, "credits": [
        {"author": "Ada", "licence": "CC BY-SA 4.0",
         "source": "https://commons.wikimedia.org/wiki/File:1.jpg"},
        {"author": "Bob", "licence": "CC0",
         "source": "https://commons.wikimedia.org/wiki/File:3.jpg"}]}
    assert sights["New Bridge"]["photos"] == 2 and len(sights["New Bridge"]["credits"]) == 1
    assert "Empty" not in sights
    warehouse.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """A migrated warehouse on SQLite, then on a temporary PostgreSQL database."""
    if request.param == "sqlite":
        warehouse = Warehouse.from_settings(load_settings(sightscan_data_dir=tmp_path),
                                            migrate=True)
        yield warehouse
        warehouse.dispose()
        return
    with temporary_database() as url:
        settings = load_settings(sightscan_data_dir=tmp_path,
                                 database_url=url.render_as_string(hide_password=False))
        warehouse = Warehouse.from_settings(settings, migrate=True)
        yield warehouse
        warehouse.dispose()


def test_each_sight_gets_the_description_and_link_its_crawl_found(
        any_warehouse: Warehouse) -> None:
    warehouse = any_warehouse
    # crawled as "Towers Old Tower" and "old_tower": training merged both into "Old Tower"
    tower = [store(warehouse, 1, "Ada", "CC0", "Towers Old Tower"),
             store(warehouse, 2, "Ada", "CC0", "old_tower")]
    bridge = [store(warehouse, 3, "Bob", "CC0", "Pont Neuf"),
              store(warehouse, 4, "Bob", "CC0", "Pont Neuf")]
    other = store(warehouse, 5, "Eve", "CC0", "Museum")
    with warehouse.transaction() as session:
        keep_sight_info(session, "TOWERS", [
            SightInfo("Towers Old Tower", None, "https://en.wikipedia.org/wiki/Old_Tower"),
            SightInfo("old_tower", "a tall old tower", None),
            SightInfo("Pont Neuf", "oldest bridge across the river", None),
            SightInfo("Museum", "a museum", "https://museum.example/")])
        sights = photo_credits(session, {
            "Old Tower": tower,
            "New Bridge": [*bridge, other],  # named otherwise by a labeller: most photos' sight
            "Museum photo": [other],  # not the sight's name, but all its photos were crawled for it
            "Unknown": [other, *tower],  # no name merges, no sight has most photos
        })
    assert (sights["Old Tower"]["description"], sights["Old Tower"]["url"]) == (
        "a tall old tower", "https://en.wikipedia.org/wiki/Old_Tower")
    assert sights["New Bridge"]["description"] == "oldest bridge across the river"
    assert "url" not in sights["New Bridge"]
    assert sights["Museum photo"]["url"] == "https://museum.example/"
    assert "description" not in sights["Unknown"] and "url" not in sights["Unknown"]
