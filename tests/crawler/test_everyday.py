"""The everyday pool from the user's side: which licences are open, the crawl stage's one
automatic fetch (SIGHTSCAN_EVERYDAY_AUTO_FETCH), and `sightscan crawl-everyday`."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fakes.commons import API_PATH, CommonsFile, FakeCommons
from fakes.images import jpeg_bytes
from fakes.server import FakeServer, Reply
from fakes.wikidata import SPARQL_PATH, WikidataItem, wikidata_handler
from sightscan.cli import app
from sightscan.config import get_settings, load_settings
from sightscan.crawler.commons import is_open_licence
from sightscan.crawler.store import run_crawl_stage
from sightscan.pipeline import StageRun
from sightscan.warehouse import Warehouse
from sightscan.warehouse.cities import request_city
from sightscan.warehouse.everyday import everyday_pool_size

JPEG = {"Content-Type": "image/jpeg"}
FOOD = "Everyday food"
TOWERS = "Quality images of towers"


@pytest.mark.parametrize(("licence", "open_"), [
    ("CC BY-SA 4.0", True), ("CC BY 2.0", True), ("CC BY-SA 3.0 de", True), ("CC0", True),
    ("Public domain", True), ("PD-self", True), ("cc-by-sa-4.0", True),
    ("CC BY-NC-SA 4.0", False), ("CC BY-ND 2.0", False), ("CC BY-NC 2.0", False),
    ("GFDL", False), ("FAL", False), ("Copyrighted free use", False), ("", False), (None, False),
])
def test_only_cc0_public_domain_cc_by_and_cc_by_sa_are_open(licence: str | None,
                                                             open_: bool) -> None:
    assert is_open_licence(licence) is open_


def everyday_files() -> list[CommonsFile]:
    """One sight photo (found by search) and two everyday photos (category members only)."""
    return [CommonsFile("File:E.jpg", "Eiffel Tower", Reply(200, jpeg_bytes(), JPEG)),
            *(CommonsFile(f"File:Food {n}.jpg", "-", Reply(200, jpeg_bytes(color=(n * 60, 9, 9)),
                                                         JPEG), category=FOOD)
              for n in (1, 2))]


def crawl_warehouse(tmp_path: Path, base_url: str, auto_fetch: bool) -> Warehouse:
    settings = load_settings(
        sightscan_data_dir=tmp_path / "data",
        sightscan_wikidata_url=base_url + SPARQL_PATH,
        sightscan_commons_url=base_url + API_PATH,
        sightscan_everyday_categories=FOOD,
        sightscan_everyday_auto_fetch=auto_fetch,
    )
    warehouse = Warehouse.from_settings(settings, migrate=True)
    with warehouse.transaction() as session:
        request_city(session, city="PARIS", threshold=1)
    return warehouse


def pool_listings(server: FakeServer) -> int:
    return sum(r.param("gcmtitle") == f"Category:{FOOD}" for r in server.requests_to(API_PATH))


@pytest.mark.parametrize("auto_fetch", [True, False])
def test_a_crawl_fills_an_empty_pool_once_when_asked_to(fake_server: FakeServer, tmp_path: Path,
                                                        auto_fetch: bool) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Paris": [
        WikidataItem("Q243", "Eiffel Tower", 180, ["Point(2.2945 48.8583)"])]}))
    FakeCommons(fake_server, everyday_files())
    warehouse = crawl_warehouse(tmp_path, fake_server.url, auto_fetch)
    counts = run_crawl_stage(warehouse, StageRun("PARIS")).counts
    assert counts["stored"] == 1
    assert counts.get("everyday_stored") == (2 if auto_fetch else None)
    again = run_crawl_stage(warehouse, StageRun("PARIS")).counts
    assert "everyday_stored" not in again  # the pool is there: not fetched again
    assert pool_listings(fake_server) == (1 if auto_fetch else 0)
    with warehouse.transaction() as session:
        assert everyday_pool_size(session) == (2 if auto_fetch else 0)
    warehouse.dispose()


def test_a_failed_automatic_fetch_never_fails_the_crawl(fake_server: FakeServer,
                                                        tmp_path: Path) -> None:
    fake_server.route("GET", SPARQL_PATH, wikidata_handler({"Paris": [
        WikidataItem("Q243", "Eiffel Tower", 180, ["Point(2.2945 48.8583)"])]}))
    commons = FakeCommons(fake_server, everyday_files())
    commons.failing[f"Category:{FOOD}"] = Reply(400, {"error": {"code": "badvalue",
                                                                 "info": "no"}})
    warehouse = crawl_warehouse(tmp_path, fake_server.url, auto_fetch=True)
    counts = run_crawl_stage(warehouse, StageRun("PARIS")).counts
    assert (counts["stored"], counts["everyday_stored"]) == (1, 0)
    warehouse.dispose()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGHTSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIGHTSCAN_EVERYDAY_CATEGORIES", FOOD)
    monkeypatch.setenv("SIGHTSCAN_LANDMARK_CATEGORIES", TOWERS)
    get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env")
def test_crawl_everyday_fetches_the_pool_and_says_what_it_did(
        fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    tower = CommonsFile("File:Tower.jpg", "-", Reply(200, jpeg_bytes(color=(9, 9, 200)), JPEG),
                        category=TOWERS)
    FakeCommons(fake_server, [*everyday_files(), tower])
    monkeypatch.setenv("SIGHTSCAN_COMMONS_URL", fake_server.url + API_PATH)
    result = CliRunner().invoke(app, ["crawl-everyday", "--limit", "1"])
    assert result.exit_code == 0, result.output
    # one everyday photo and one photo of another place's landmark (for the gate)
    assert ("everyday pool: 2 stored (1 of other places' landmarks), 0 already stored, "
            "0 skipped; 2 photos in the pool") in " ".join(result.stdout.split())


@pytest.mark.usefixtures("cli_env")
def test_crawl_everyday_offline_fails_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nothing listens on: the network is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("SIGHTSCAN_COMMONS_URL", f"http://127.0.0.1:{port}{API_PATH}")
    result = CliRunner().invoke(app, ["crawl-everyday"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot list the everyday photos")
    assert "connection failed" in lines[0] and lines[0].endswith("nothing stored")
