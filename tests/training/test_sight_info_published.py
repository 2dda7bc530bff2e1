"""End to end: what a sight is, from the crawl's Wikidata answer to the published model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mts_synthetic import render

from fakes.commons import CommonsFile, FakeCommons
from fakes.server import (
    FakeServer,
    Reply,
    fake_server,  # noqa: F401  (fixture)
)
from fakes.wikidata import SPARQL_PATH, WikidataItem, wikidata_handler
from sightscan.config import load_settings
from sightscan.crawler.store import run_crawl_stage
from sightscan.labelling.service import run_label_stage
from sightscan.pipeline import StageRun
from sightscan.training.export import read_metadata
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import find_city, request_city
from sightscan.warehouse.versions import latest_model_version

SIGHTS = {"Eiffel Tower": "red disc", "Louvre": "blue square"}
PARIS = [
    WikidataItem("Q243", "Eiffel Tower", 180, description="tower in Paris, France",
                 article="Eiffel Tower"),
    WikidataItem("Q19675", "Louvre", 170, description="art museum in Paris, France"),
]


@pytest.mark.slow
def test_a_crawled_city_publishes_each_sights_description_and_link(
        fake_server: FakeServer, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("torch")
    from sightscan.training.service import train_city

    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Paris": PARIS}))
    rng = np.random.default_rng(3)
    files = []
    for sight, shape in SIGHTS.items():
        for n in range(4):
            photo = Reply(200, render(shape, rng, 64)[0], {"Content-Type": "image/png"})
            files.append(CommonsFile(f"File:{sight} {n}.png", sight, photo, mime="image/png"))
    FakeCommons(fake_server, files)
    settings = load_settings(
        sightscan_data_dir=tmp_path / "data",
        sightscan_wikidata_url=fake_server.url + SPARQL_PATH,
        sightscan_overpass_url=fake_server.url + "/api/interpreter",
        sightscan_commons_url=fake_server.url + "/w/api.php",
        min_image_number_per_label=3, mts_epochs=1, max_images_per_sight=4,
    )
    warehouse = Warehouse.from_settings(settings, migrate=True)
    with warehouse.transaction() as session:
        request_city(session, city="PARIS", threshold=1)
    assert run_crawl_stage(warehouse, StageRun("PARIS")).counts["stored"] == 8
    run_label_stage(warehouse, StageRun("PARIS", {"mode": "new"}))
    result = train_city(warehouse, "PARIS")
    assert result.published, result.reason
    with warehouse.transaction() as session:
        model = latest_model_version(session, city_id=find_city(session, "PARIS").id)
        assert model is not None
        embedded = read_metadata(warehouse.blobs.get(model.blob_key))
    for metadata in (model.metadata, embedded):  # the API's copy and the one in the file
        sights = metadata["sights"]
        assert sights["Eiffel Tower"]["description"] == "tower in Paris, France"
        assert sights["Eiffel Tower"]["url"] == "https://en.wikipedia.org/wiki/Eiffel_Tower"
        assert sights["Louvre"]["description"] == "art museum in Paris, France"
        assert sights["Louvre"]["url"] == "https://www.wikidata.org/wiki/Q19675"
        assert sights["Louvre"]["photos"] >= 3 and sights["Louvre"]["credits"]
    warehouse.dispose()
